"""Training and evaluation loops shared by every chapter (import from the submodules).

- :mod:`rrg_lite.train.loop` — ``TrainConfig``, ``train(model, dataset, cfg, collate_fn=None, loss_fn=None,
  eval_fn=None, eval_every=None) -> TrainResult``. Built on 🤗 Accelerate: the same call runs on CPU, one GPU,
  several GPUs or DeepSpeed (``accelerate launch --config_file ...``). Gradient accumulation, bf16 on GPU
  (``mixed_precision="auto"``), warmup + cosine/linear/constant schedules, gradient clipping, tqdm progress,
  loss history, checkpoints in safetensors every ``save_every`` steps under ``output_dir/step_<n>``, and exact
  resume (``resume_from="latest"`` or a folder): a stopped and resumed run ends with the same weights.
  Only parameters with ``requires_grad`` are trained. The default objective is ``model(**batch).loss``;
  ``loss_fn(model, batch) -> scalar`` replaces it (DPO, contrastive, ...)::

      from rrg_lite.train.loop import TrainConfig, train
      cfg = TrainConfig(lr=1e-3, batch_size=8, grad_accum=1, max_steps=300, schedule="cosine",
                        warmup_steps=20, seed=0, output_dir=None)
      res = train(mllm, dataset, cfg, collate_fn=MLLMCollator(tok.pad_token_id))
      res.history, res.samples_per_second, res.last_checkpoint

- :mod:`rrg_lite.train.schedules` — ``lr_multiplier``, ``make_scheduler``.
- :mod:`rrg_lite.train.checkpoint` — ``save_checkpoint`` / ``load_checkpoint`` / ``latest_checkpoint``,
  ``save_model_weights`` / ``load_model_weights`` (safetensors; nothing pickled).
- :mod:`rrg_lite.train.evaluate` — ``generate_reports(mllm, examples, batch_size, ...) -> list[str]`` (left
  padding, greedy or sampling) and ``score_reports(predictions, references)`` with :mod:`rrg_lite.metrics`.
- :mod:`rrg_lite.train.dpo`, :mod:`rrg_lite.train.preference` — DPO (owned by the DPO chapter).
"""
