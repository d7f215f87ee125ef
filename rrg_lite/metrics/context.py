"""Negation, uncertainty, hypothetical and historical context of label mentions, with medspaCy's ConText.

ConText (Harkema et al. 2009; medspaCy's implementation) decides whether a *target* (here: a mention of a label
found by a labeler's lexicon) is modified by a nearby *modifier* (a trigger phrase). Each modifier has a category
and a direction: FORWARD modifiers reach targets after them, BACKWARD ones targets before them, BIDIRECTIONAL
both; a modifier's scope ends at the end of the sentence, at a TERMINATE modifier ("but", ", cardiomegaly is
present"), at a modifier of the same category, or after ``max_scope`` tokens. PSEUDO modifiers are phrases that
contain a trigger but are not one ("no change in", "not present on the prior study"): the longer match wins, so
the trigger inside them is dropped.

The rules below are the radiology lexicon of :mod:`rrg_lite.metrics.rules` (the lesson: which words negate,
hedge, request or refer to the past in a report), written as ConText rules. medspaCy's default rules are generic
clinical-note rules and are not loaded: by themselves they still negate "cardiomegaly is present" after "No
pneumothorax or effusion," and do not mark "correlate clinically for pneumonia" as hypothetical.

Categories (``CATEGORY -> what the labeler does with a mention it modifies``):

- ``NEGATED_EXISTENCE`` -> negative (0);
- ``POSSIBLE_EXISTENCE`` -> uncertain (-1); negation wins over it ("no findings concerning for pneumonia" is 0);
- ``NEGATED_UNCERTAIN`` ("cannot be excluded", "not ruled out") -> uncertain, and it wins over negation;
- ``HYPOTHETICAL`` (requests and conditions: "correlate clinically for", "to rule out", "evaluate for", "if")
  and ``HISTORICAL`` ("history of", "sequelae of prior") -> the mention is not a current finding and is dropped.

No model is downloaded: the pipeline is a blank English spaCy tokenizer. The labeler splits sentences itself (a
regex, as spaCy's rule ``sentencizer`` would), so each sentence is one small Doc and a modifier's scope starts as the
rest of that Doc in its direction; PyRuSH (medspaCy's default
sentence splitter) is not used (slow, and it logs at DEBUG).
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache

NEG, UNC, NEG_UNC = "NEGATED_EXISTENCE", "POSSIBLE_EXISTENCE", "NEGATED_UNCERTAIN"
HYPO, HIST = "HYPOTHETICAL", "HISTORICAL"

# ------------------------------------------------------------------------------------------------ the lexicon
# Each entry: (name, category, regex over the lower-cased sentence, direction, max_scope in tokens or None,
# excluded target labels). Regexes are matched on the sentence text and snapped outward to whole tokens.
_MODS = r"(?:significant|substantial|appreciable|definite|major|interval|further|other|acute|real|notable|marked|" \
        r"obvious|apparent|gross|overall|radiographic|measurable|considerable|much|any|evident|visible)"
_CHANGE_WORDS = r"(?:change|changes|increase|decrease|progression|worsening|improvement|difference|growth|" \
                r"regression|enlargement|reduction)"

RULES: list[tuple[str, str, str, str, int | None, tuple[str, ...]]] = [
    # ---- pseudo-negations: contain "no"/"not"/"without" but negate nothing; any number of modifiers
    ("pseudo_no_change", "PSEUDO",
     rf"\b(?:no|without|nor)\s+(?:{_MODS}\s+)*{_CHANGE_WORDS}\b(?:\s+(?:in|of|since|from|compared))?", "PSEUDO", None, ()),
    ("pseudo_not_changed", "PSEUDO",
     r"\bnot\s+(?:significantly\s+|substantially\s+|appreciably\s+|markedly\s+|much\s+|been\s+)?"
     r"(?:changed|increased|decreased|improved|worsened|enlarging|grown|regressed)\b", "PSEUDO", None, ()),
    ("pseudo_misc", "PSEUDO",
     r"\bgram[- ]negative\b|\bnot only\b|\bnot well (?:seen|visualized|evaluated|assessed)\b|\bif not\b|"
     r"\bwhether or not\b|\bno\s+(?:other|additional|new)\s+(?:change|changes)\b", "PSEUDO", None, ()),
    # "was not present on the prior study" = new, not absent
    ("pseudo_not_on_prior", "PSEUDO",
     r"\b(?:was|were|is|are)?\s*not\s+(?:present|seen|visible|identified|evident|apparent)\s+(?:on|in)\s+(?:the\s+)?"
     r"(?:prior|previous|earlier|last|preceding|comparison)\b", "PSEUDO", None, ()),

    # ---- negated uncertainty: "cannot be excluded" is a hedge, not a negation (CheXpert's precedence)
    ("neg_unc_passive", NEG_UNC,
     r"\b(?:cannot|can ?not|can't|could not|couldn't|not|difficult to|hard to|unable to|impossible to)\s+(?:be\s+)?"
     r"(?:entirely\s+|completely\s+|definitely\s+|totally\s+|fully\s+|reliably\s+|confidently\s+|clearly\s+)?"
     r"(?:excluded|ruled out|distinguished|differentiated|assessed|evaluated|be evaluated)\b(?:\s+clearly)?",
     "BIDIRECTIONAL", None, ()),
    ("neg_unc_active", NEG_UNC,
     r"\b(?:cannot|can ?not|can't|could not|couldn't|difficult to|hard to|unable to|impossible to)\s+"
     r"(?:exclude|rule out|r/o|distinguish|differentiate|assess|evaluate)\b", "FORWARD", None, ()),
    ("neg_unc_not_certain", NEG_UNC, r"\bnot\s+(?:entirely\s+|completely\s+)?(?:certain|sure|excluded)\b",
     "BIDIRECTIONAL", None, ()),

    # ---- negation before the mention
    ("neg_pre", NEG,
     r"\b(?:no|not|without|absence of|absent|negative for|free of|clear of|resolution of|resolved|removal of|"
     r"removed|rather than|instead of|never|neither|nor|lack of|lacks|ruled out|excluded|exclusion of|"
     r"(?:interval\s+)?clearing of|has cleared|disappearance of|nonvisualization of|non-visualization of)\b",
     "FORWARD", None, ()),
    # ---- negation after the mention
    ("neg_post", NEG,
     r"\b(?:(?:is|are|was|were|has been|have been|be|being)\s+)?(?:also\s+)?"
     r"(?:not\s+(?:seen|identified|present|detected|observed|visualized|visualised|appreciated|evident|noted|"
     r"demonstrated|visible|apparent|found|shown|depicted|recognized|recognised|included|monitored|encountered)"
     r"|(?:has|have)\s+(?:since\s+|now\s+|completely\s+|nearly\s+)?(?:resolved|cleared|been removed|disappeared|"
     r"been excluded|been withdrawn)"
     r"|resolved|absent|removed|(?:now\s+)?gone|excluded|ruled out|negative)\b",
     "BACKWARD", None, ()),
    # "heart size and pulmonary vascular engorgement appear within limits of normal"
    ("neg_post_normal", NEG,
     r"\b(?:is|are|was|were|appears?|appeared|remains?|seems?)\s+(?:\w+\s+)?within\s+(?:the\s+)?"
     r"(?:normal\s+limits|limits\s+of\s+normal)\b", "BACKWARD", None, ()),
    # "X is no longer seen" / "no longer evidence of X"
    ("neg_no_longer", NEG, r"\bno longer(?:\s+(?:seen|visible|present|identified|evident|demonstrated|apparent))?\b",
     "BIDIRECTIONAL", None, ()),

    # ---- hedges that reach both ways ("blunting likely represents a small effusion"), but not back over a comma
    ("unc_both", UNC, r"(?<![,;])(?<![,;]\s)\b(?:likely|probably|possibly|probable|presumably|presumed)\b",
     "BIDIRECTIONAL", None, ()),
    # ---- uncertainty before the mention
    ("unc_pre", UNC,
     r"\b(?:may|might|could|possible|possibly|probable|probably|likely|questionable|question of|questioned|"
     r"suspect|suspected|suspicious|suspicion|concern|concerning|worrisome|suggest|suggests|suggested|"
     r"suggestive|suggesting|differential|equivocal|indeterminate|uncertain|presumed|presumably|"
     r"perhaps|versus|vs|either|raises? the (?:possibility|question)|consider|considered|"
     r"potential|potentially|may represent|could represent|can represent|ddx|not clearly|unclear)\b",
     "FORWARD", None, ()),
    # ---- uncertainty after the mention
    # (not after a comma: "opacity, likely atelectasis" hedges what follows)
    ("unc_post", UNC,
     r"(?<![,;])(?<![,;]\s)\b(?:(?:is|are|was|were)\s+)?(?:also\s+)?(?:possible|probable|likely|suspected|questioned|"
     r"considered|in the differential|a consideration|favou?red|difficult to exclude|"
     r"(?:may|might|could)\s+(?:be\s+)?(?:present|seen|exist))\b|\?", "BACKWARD", None, ()),
    # "atelectasis or scarring": each side of a close "or" is uncertain (reach: one or two tokens)
    ("unc_or", UNC, r"\b(?:or|and/or|versus|vs)\b|(?<=\w)/(?=\w)", "BIDIRECTIONAL", 2, ()),

    # ---- requests and conditions: not a finding
    ("hypo_request", HYPO,
     # (not "recommended for", "to characterize", "correlate with": those usually follow a finding that exists)
     r"\b(?:correlat\w+\s+(?:clinically\s+)?for|clinical(?:ly)?\s+correlat\w+\s+(?:for|is recommended for)|"
     r"(?:to|in order to)\s+(?:identify|exclude|rule out|r/o|detect|look for)|"
     r"(?:evaluate|evaluation|eval|assess|assessment|screen|screening|search|looking|look)\s+for|"
     r"in terms of|to check for|(?:should|could|would) (?:there|this)|"
     r"if (?:there is |there are )?(?:concern|clinically|suspicion|symptoms)|rule out|r/o)\b", "FORWARD", None, ()),
    ("hypo_if", HYPO, r"\bif\b", "FORWARD", None, ()),
    ("hypo_risk", HYPO, r"\b(?:risk of|risks of|at risk for|prevention of|to prevent)\b", "FORWARD", None, ()),

    # ---- the past: not a current finding (devices and sequelae are present even when their cause is past)
    ("hist_history", HIST, r"\b(?:history of|hx of|h/o|known history of|past history of|previous history of)\b",
     "FORWARD", None, ("Support Devices", "Medical material", "Pulmonary fibrotic sequela")),
    ("hist_sequela", HIST,
     r"\b(?:sequelae?|residuals?|residua|stigmata|sequel\w*|remnants?)\s+(?:of|from)\s+(?:an?\s+|the\s+)?"
     r"(?:prior|previous|old|remote|past|healed|treated)\b", "FORWARD", None,
     ("Support Devices", "Medical material", "Pulmonary fibrotic sequela", "Lung Opacity")),
    ("hist_prior", HIST,
     r"\b(?:prior|previous|old|remote|past|healed|treated)\b(?=\s+(?:\w+\s+)?(?:infection|infectious|pneumonia|"
     r"tuberculo\w*|tb|granulomatous|pneumonitis|aspiration))", "FORWARD", 3,
     ("Support Devices", "Medical material", "Fracture")),  # an old fracture is still seen
    ("hist_status_post", HIST, r"\b(?:status post|s/p)\b", "FORWARD", 3,
     ("Support Devices", "Medical material", "Pulmonary fibrotic sequela")),

    # ---- clause terminations: a trigger reaches only its own clause
    ("term_words", "TERMINATE",
     r"\b(?:although|though|which|whereas|while|yet|except|aside from|apart from|other than|"
     r"with the exception of|nevertheless|otherwise|there (?:is|are|has been|have been|was|were))\b",
     "TERMINATE", None, ()),
    # a parenthesis opens or closes an aside with its own context
    ("term_paren", "TERMINATE", r"[()\[\]]", "TERMINATE", None, ()),
    # "..., cardiomegaly is present" / "..., and the heart size is natural": a comma (or "and") before a new clause
    # with its own verb ends the scope; a list continued by "or"/"nor" does not ("no X, Y, or Z is seen")
    ("term_clause", "TERMINATE",
     r",\s*(?:and|but)\s+(?=[^,;]*?\b(?:is|are|was|were|has|have|appears?|remains?|increased|decreased|persists?)\b)"
     r"(?![^,;]*\b(?:or|nor)\b)"
     r"|\s(?:and|but)\s+(?=(?:the|there|a|an|this|these)\b[^,;]*?\b(?:is|are|was|were|has|have|appears?|remains?|"
     r"increased|decreased|persists?)\b)(?![^,;]*\b(?:or|nor)\b)"
     r"|,\s*(?!or\b|nor\b|and\b)(?=[^,;]*?\b(?:is|are|was|were|has|have|appears?|remains?)\s+(?:also\s+|again\s+|now\s+|still\s+)?"
     r"(?:present|seen|noted|observed|identified|demonstrated|detected|visualized|evident|appreciated|increased|"
     r"enlarged|natural|normal|unremarkable|stable|unchanged|new|persistent|within)\b)(?![^,;]*\b(?:or|nor|no|not)\b)",
     "TERMINATE", None, ()),
    ("term_present", "TERMINATE",
     r"\b(?:is|are|was|were|has|have)\s+(?:again\s+|also\s+|now\s+|still\s+|newly\s+)?(?:present|seen|noted|"
     r"identified|demonstrated|observed|detected|visualized|evident|appreciated|increased|decreased|"
     r"worsened|improved|unchanged|stable|similar|new|persistent)\b(?!\s+(?:on|in)\s+(?:the\s+)?(?:prior|previous))",
     "TERMINATE", None, ()),
]


def _silence() -> None:
    # medspaCy's optional pieces (PyRuSH, QuickUMLS) log at DEBUG/INFO through loguru and logging on import
    for name in ("PyRuSH", "medspacy", "quicksectx", "PyFastNER"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from loguru import logger
        logger.disable("PyRuSH")
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        pass


@lru_cache(maxsize=1)
def pipeline():
    """(nlp, rules): a blank English spaCy pipeline and :data:`RULES` as compiled regexes with their ConTextRules.

    The modifiers are found with Python regexes over the sentence text (medspaCy's own regex matcher rebuilds
    ``doc.text`` once per rule, which made it the labeler's bottleneck); scopes, terminations and which target each
    modifier reaches are medspaCy's (:class:`ConTextModifier`, :class:`ConTextGraph`).
    """
    _silence()
    import spacy
    from medspacy.context import ConTextRule

    nlp = spacy.blank("en")
    compiled = []
    for name, category, pattern, direction, max_scope, excluded in RULES:
        rule = ConTextRule(name, category, pattern=pattern, direction=direction, max_scope=max_scope,
                           excluded_types=set(excluded) or None)
        compiled.append((re.compile(pattern), rule))
    return nlp, compiled


def _modifier_spans(doc, sentence: str, compiled) -> list[tuple[int, int, object]]:
    """Non-overlapping (token start, token end, rule) matches; of overlapping matches the longest wins (PSEUDO
    phrases thereby switch off the triggers inside them)."""
    found = []
    for regex, rule in compiled:
        for m in regex.finditer(sentence):
            if m.end() == m.start():
                continue
            sp = doc.char_span(m.start(), m.end(), alignment_mode="expand")
            if sp is not None and len(sp):
                found.append((sp.start, sp.end, rule))
    found.sort(key=lambda x: (-(x[1] - x[0]), x[0]))
    kept: list[tuple[int, int, object]] = []
    for s, e, rule in found:
        if all(e <= ks or ke <= s for ks, ke, _ in kept):
            kept.append((s, e, rule))
    return sorted(kept, key=lambda x: x[0])


def _scope(rule, start: int, end: int, n: int) -> tuple[int, int]:
    """A modifier's initial scope in a one-sentence Doc of ``n`` tokens: medspaCy's own rule (the sentence in the
    rule's direction, cut to ``max_scope`` tokens), computed directly because the Doc is the sentence (asking spaCy
    for ``token.sent`` was a third of the labeler's time)."""
    d, m = rule.direction.lower(), rule.max_scope
    if d == "forward":
        return end, (n if m is None else min(n, end + m))
    if d == "backward":
        return (0 if m is None else max(0, start - m)), start
    return (0 if m is None else max(0, start - m)), (n if m is None else min(n, end + m))


def classify(sentence: str, mentions: list[tuple[str, int, int]]) -> list[set[str]]:
    """The ConText categories that modify each mention of one (lower-cased) sentence.

    Args:
        sentence: one sentence.
        mentions: ``(label, char start, char end)`` per mention, in any order.
    Returns:
        one set of categories (subset of NEG, UNC, NEG_UNC, HYPO, HIST) per mention, in input order.
    """
    from medspacy.context.context_graph import ConTextGraph
    from medspacy.context.context_modifier import ConTextModifier

    nlp, compiled = pipeline()
    doc = nlp.make_doc(sentence)
    targets, where = [], []
    for k, (label, a, b) in enumerate(mentions):
        sp = doc.char_span(a, b, label=label, alignment_mode="expand")
        if sp is not None:
            targets.append(sp)
            where.append(k)
    graph = ConTextGraph(targets=targets, prune_on_modifier_overlap=False)
    n = len(doc)
    graph.modifiers = [ConTextModifier(rule, s, e, doc, scope_start=a, scope_end=b)
                       for s, e, rule in _modifier_spans(doc, sentence, compiled) if rule.direction.upper() != "PSEUDO"
                       for a, b in [_scope(rule, s, e, n)]]
    graph.update_scopes()
    graph.apply_modifiers()
    out: list[set[str]] = [set() for _ in mentions]
    index = {id(t): k for t, k in zip(targets, where)}
    for target, modifier in graph.edges:
        out[index[id(target)]].add(modifier.category)
    return out
