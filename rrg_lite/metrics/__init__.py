"""Measuring a report: the metrics of the field, each with its convention named, offline by default.

Every function returns :class:`~rrg_lite.metrics.result.MetricResult` objects (``value``, ``convention``,
``per_example``, ``n``, ``notes``) or a dict of them; ``results_table(dict)`` turns them into a DataFrame.

One call for everything (other chapters use this)::

    from rrg_lite.metrics.report import score_reports
    results = score_reports(preds, refs, labeler="chexpert")   # or labeler="ctrate" / "ct" for chest CT
    # BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap, R2Gen text cleaning), ROUGE-1/2/L (rouge-score,
    # stemmer), CheXpert micro/macro/example P/R/F1 -14 and -5, offline GREEN, hall., length KL;
    # metrics=(... "bertscore") adds BERTScore with the offline MiniLM.

The pieces, one module per idea:

==========================  =============================================================================
``text``                    input checks (``check_pairs``) and the named normalisations "r2gen", "m4cxr",
                            "whitespace"
``nlg``                     ``bleu``, ``meteor`` (one JVM per call; ``JavaNotFoundError`` without Java),
                            ``rouge_l``, ``cider`` — pycocoevalcap; ``rouge_score_f`` — rouge-score;
                            ``bleu_from_stats`` for resampling corpus BLEU
``bertscore``               ``bert_score(preds, refs, model="minilm" | "radeval" | "default", model_path=...)``
``chexpert_labeler``        ``label_reports_chexpert(texts)`` -> (N, 14) codes 1 / 0 / -1 / NaN
``ctrate_labeler``          ``label_reports_ctrate(texts)`` -> (N, 18) codes; ``binarize(codes, uncertain)``
``ct_findings``             CT-RATE's 18 labels plus findings outside them (for the offline GREEN on CT)
``rules``                   the NegEx-style engine behind the labelers (mentions, negation, uncertainty)
``neural_labelers``         ``chexbert_label`` (f1chexbert) and ``ctclip_radbert_label`` (local checkpoint)
``clinical``                ``clinical_efficacy(pred_codes, ref_codes, labels, subset, uncertain)`` and
                            ``clinical_efficacy_reports(preds, refs, labeler)`` — micro / macro / example P, R, F1
``green``                   ``green_from_counts``, ``parse_green_output``, ``green_offline(preds, refs, labeler)``,
                            ``green_offline_findings``, ``findings_from_records`` (world records),
                            ``green_official(..., model_path)``, ``green_with_judge(..., judge)``
``tasks``                   ``grounding_metrics`` (mIoU, Acc@0.5), ``region_recognition`` (P/R/F1)
``grounding``               M4CXR's grounding around them: ``grounding_results`` (boxes read from answers),
                            ``pairwise_iou``, ``mean_box_baseline``
``vqa``                     ``vqa_scores`` — M4CXR's exact-match accuracy, recall, per-sample BLEU-1
``petct_facts``             PET/CT fact-level scores: ``fact_f1`` (F1-T/TP/TF/TPF), ``malignancy_f1``,
                            ``suv_bin_accuracy``, ``size_error``, ``petct_fact_metrics``
``hallucination``           ``hallucination_rate(reports)`` — share with comparison / procedure / view /
                            communication content (LLM-RG4's "hall.", rule-based)
``lengths``                 ``length_kl(preds, refs)`` — KDE of word counts and KL(ref || generated)
``significance``            ``bootstrap_ci``, ``paired_bootstrap``, ``approximate_randomization`` (take
                            MetricResults: corpus BLEU and micro-F1 are recomputed per resample)
``perturb``                 report pairs with one controlled error each (Chapter 3's figure)
``labeler_eval``            agreement of a labeler with hand-written sentences or true labels
``report``                  ``score_reports`` (above)
==========================  =============================================================================

Defaults, named: text cleaning "r2gen" for pycocoevalcap metrics (scorers called directly, no PTBTokenizer);
rouge-score with the Porter stemmer; BERTScore "minilm" (local, layer 6, not rescaled); uncertain labels count
as positive in clinical efficacy (f1chexbert's "rrg" mode; pass ``uncertain="negative"`` for M4CXR's
convention); GREEN offline is an approximation of the LLM judge, not GREEN.
"""
