"""M4CXR (multitask chest X-ray MLLM): its own parts, its recipe and its experiment (the chapter is to come).

Paper: ``papers/m4cxr.txt``; engineering map in the design notes (SYSTEMS.md §4). Each row maps a part of the
paper to the code that builds it (or will); the shared parts it uses are in brackets.

=================================================  ==============================================================
paper                                              code
=================================================  ==============================================================
``X_i = M_P(M_V(x_i))`` (Eq. 1): C-Abstractor,     :class:`rrg_lite.tokenizers.cabstractor.CAbstractor`
depth 3, MLP depth 2, hidden 1024, 1369 -> 361     (:class:`~rrg_lite.tokenizers.cabstractor.CAbstractorConfig`;
tokens (Sec. IV-D); each image on its own          T images tokenised one by one); 2-D ViT from
                                                   :mod:`rrg_lite.encoders`
controls: pool-only / linear projector at a        :func:`rrg_lite.tokenizers.cabstractor.pool_only_projector`
matched token ratio                                (``depth=0``); :mod:`rrg_lite.tokenizers.linear`
boxes as text ``[x1,y1,x2,y2]``, integers 0–100    :mod:`rrg_lite.data.boxes` (``to_relative_100``, ``box_text``,
of the centre-cropped image (Sec. III-A-2)         ``parse_box``, ``parse_labeled_boxes``)
one instruction dataset from task templates        :func:`.instructions.build_instruction` from
(Table I, Table IX), system prompt, tasks of       :class:`.instructions.StudyFacts` (world records:
three types                                        :func:`.instructions.facts_from_xray_study`);
                                                   :data:`.instructions.TEMPLATES`, :data:`.instructions.TASKS`,
                                                   :func:`.instructions.available_tasks`
multi-turn CoT MRG: findings list, then report;    :func:`.instructions.cot_dialogue`,
the model's own turn 1 at inference (Sec. III-B,   :func:`.instructions.cot_followup`,
Fig. 3); single-turn MRG (Table VIII, Exp1)        :func:`.instructions.parse_findings_list`; ``cot=False``
sampling over 50 task-datasets: empirical          :class:`.sampling.TaskSampler`, :data:`.sampling.TABLE_X`,
(Table X), D1–D4 (Sec. V-D, Table VII),            :func:`.sampling.strategy_probabilities`; ``type_ratios`` for
0.54 / 0.35 / 0.11 task types                      data without hand-tuned weights
metrics: CheXbert mF1 / MF1 / eF1 (-14, -5),       :func:`rrg_lite.metrics.clinical.clinical_efficacy_reports`
uncertain = negative                               (``uncertain="negative"``); turn-1 F1:
                                                   :func:`.evaluation.turn1_scores`
BLEU / ROUGE-L after lower-case + wordpunct        :func:`.evaluation.report_nlg` (:mod:`rrg_lite.metrics.nlg`)
grounding mIoU, Acc@0.5 (Table V)                  :mod:`rrg_lite.metrics.grounding` (``grounding_results``,
                                                   ``mean_box_baseline``; IoU from :mod:`rrg_lite.metrics.tasks`)
VQA accuracy, recall, BLEU-1 (Table VI)            :mod:`rrg_lite.metrics.vqa` (``vqa_scores``)
world X-rays / MIMIC-CXR -> facts + frozen         :func:`.recipe.world_data`, :func:`.recipe.mimic_data`
features of every view and prior (once)            (:func:`rrg_lite.encoders.hub.get_encoder` per view)
task mix drawn by the sampler                      :func:`.recipe.task_mixture` (:class:`.sampling.TaskSampler`)
multi-turn CoT training, loss on both answers      :func:`.recipe.encode_instruction`
                                                   (``MultimodalLM.encode_dialogue``)
stage 1 projector only (image -> FINDINGS),        :func:`.recipe.train_stage1`, :func:`.recipe.train_stage2`
stage 2 projector + LoRA (Table II)                (:mod:`rrg_lite.mllm.stages`); text warm-up of the tiny LM:
                                                   :func:`.recipe.warm_up_lm` (ours)
CoT inference with the model's own turn 1          :func:`.recipe.generate_cot`; single-turn:
                                                   :func:`.recipe.generate_single_turn`
grounding / VQA evaluation; image gain (NLL)       :func:`.recipe.ground_phrases`, :func:`.recipe.answer_vqa`,
                                                   :func:`.recipe.answer_nll`
Table VIII ablations, controls (oracle turn 1,     :func:`.experiment.run_experiment`, :func:`.experiment.summarize`,
another patient's turn 1, wrong image, mean box),  :func:`.experiment.paired`, :func:`.experiment.paper_table`
projector controls
=================================================  ==============================================================
"""
