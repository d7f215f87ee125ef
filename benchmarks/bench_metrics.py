"""Benchmark of the offline metric suite (not run in CI).

    python benchmarks/bench_metrics.py --pairs 2000 --threads 2

Builds ~``--pairs`` report pairs from the synthetic world's chest X-ray reports (each reference with one
controlled error, see rrg_lite.metrics.perturb), then times every metric of ``score_reports`` separately,
the labelers in reports per second (X-ray and CT), the offline GREEN judge in pairs per second (cold cache), and
checks that METEOR starts a single Java process for the whole call.
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bertscore", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)

    from rrg_lite.metrics import nlg
    from rrg_lite.metrics.chexpert_labeler import label_reports_chexpert
    from rrg_lite.metrics.ctrate_labeler import label_reports_ctrate
    from rrg_lite.metrics.green import _findings_from_text, green_offline
    from rrg_lite.metrics.perturb import controlled_pairs
    from rrg_lite.world.ct import make_ct_study
    from rrg_lite.world.xray import make_xray_study

    t = time.perf_counter()
    refs_pool = [make_xray_study(i).report.text() for i in range(max(1, args.pairs // 5 + 20))]
    pairs = controlled_pairs(refs_pool, seed=0)[: args.pairs]
    preds, refs = [p["cand"] for p in pairs], [p["ref"] for p in pairs]
    print(f"built {len(pairs)} pairs from {len(refs_pool)} world reports in {time.perf_counter() - t:.1f}s "
          f"(mean {sum(len(r.split()) for r in refs) / len(refs):.0f} words per reference)")

    timings = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - t0
        return out

    from rrg_lite.metrics.bertscore import bert_score
    from rrg_lite.metrics.clinical import clinical_efficacy_reports
    from rrg_lite.metrics.hallucination import hallucination_rate
    from rrg_lite.metrics.lengths import length_kl

    res = {}
    res.update(timed("BLEU-1..4 (pycocoevalcap)", lambda: nlg.bleu(preds, refs)))
    res["ROUGE-L"] = timed("ROUGE-L (pycocoevalcap)", lambda: nlg.rouge_l(preds, refs))
    res["CIDEr"] = timed("CIDEr (pycocoevalcap)", lambda: nlg.cider(preds, refs))

    from pycocoevalcap.meteor import meteor as meteor_mod
    starts = []
    real_init = meteor_mod.Meteor.__init__

    def counting_init(self):
        starts.append(1)
        real_init(self)

    meteor_mod.Meteor.__init__ = counting_init
    if nlg.java_available():
        res["METEOR"] = timed("METEOR 1.5 (jar)", lambda: nlg.meteor(preds, refs))
    meteor_mod.Meteor.__init__ = real_init
    res.update(timed("ROUGE-1/2/L (rouge-score)", lambda: nlg.rouge_score_f(preds, refs)))
    if not args.no_bertscore:
        res["BERTScore"] = timed("BERTScore MiniLM (incl. load)", lambda: bert_score(preds, refs))
    res.update(timed("CheXpert CE (labels both sides)", lambda: clinical_efficacy_reports(preds, refs)))
    _findings_from_text.cache_clear()
    res["GREEN"] = timed("GREEN offline (cold cache)", lambda: green_offline(preds, refs))
    res.update(timed("hallucination rate", lambda: hallucination_rate(preds)))
    res["length KL"] = timed("length KL", lambda: length_kl(preds, refs))

    total = sum(timings.values())
    print(f"\nfull offline suite on {len(pairs)} pairs, {args.threads} threads: {total:.1f}s")
    for name, sec in timings.items():
        print(f"  {name:38s} {sec:7.2f}s")
    print(f"METEOR Java processes started for {len(pairs)} pairs: {len(starts)}")
    print(f"GREEN offline: {len(pairs) / timings['GREEN offline (cold cache)']:.0f} pairs/s (cold)")

    texts = preds + refs
    t0 = time.perf_counter()
    label_reports_chexpert(texts)
    cx = len(texts) / (time.perf_counter() - t0)
    ct_texts = [make_ct_study(i).report.text() for i in range(100)] * 5
    t0 = time.perf_counter()
    label_reports_ctrate(ct_texts)
    ct = len(ct_texts) / (time.perf_counter() - t0)
    print(f"labelers: CheXpert {cx:.0f} reports/s (X-ray, ~{sum(len(x.split()) for x in texts) / len(texts):.0f} words), "
          f"CT-RATE {ct:.0f} reports/s (CT, ~{sum(len(x.split()) for x in ct_texts) / len(ct_texts):.0f} words)")
    print("\nvalues:")
    for k, v in res.items():
        print(f"  {k:28s} {v.value:.4f}")


if __name__ == "__main__":
    main()
