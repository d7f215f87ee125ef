"""Training and evaluation loops shared by every chapter (import from the submodules).

- :mod:`rrg_lite.train.loop` — ``TrainConfig``, ``train(model, dataset, cfg, collate_fn=None, loss_fn=None,
  eval_fn=None, eval_every=None, accelerator=None, run_config=None) -> TrainResult``. Built on 🤗 Accelerate: the
  same call runs on CPU, one GPU, several GPUs (DDP), DeepSpeed or FSDP (``accelerate launch --config_file ...``).
  Gradient accumulation, bf16 autocast with fp32 master weights (``mixed_precision="auto"``: bf16 on a GPU that
  has it; trainable bf16/fp16 parameters are upcast), optional gradient checkpointing, warmup +
  cosine/linear/constant schedules, gradient clipping, tqdm progress, loss history. Under DDP, trainable
  parameters that get no gradient (hard top-k's score head) are detected and ``find_unused_parameters`` set.
  Checkpoints with ``output_dir``: Accelerate ``save_state`` folders ``output_dir/checkpoints/step_<n>`` every
  ``save_every`` steps (written to a temporary folder, then renamed; "latest" is never half-written), final weights
  + config in ``output_dir/final``, exact resume (``resume_from="latest"`` or a folder) that refuses a different
  config, and a reused ``output_dir`` is never silently resumed or overwritten. Only parameters with
  ``requires_grad`` are trained. The default objective is ``model(**batch).loss``; ``loss_fn(model, batch) ->
  scalar`` replaces it (DPO, contrastive, ...)::

      from rrg_lite.train.loop import TrainConfig, train
      cfg = TrainConfig(lr=1e-3, batch_size=8, grad_accum=1, max_steps=300, schedule="cosine",
                        warmup_steps=20, seed=0, output_dir="runs/stage1", save_every=100)
      res = train(mllm, dataset, cfg, collate_fn=MLLMCollator(tok.pad_token_id), run_config=profile.as_dict())
      res.history, res.samples_per_second, res.last_checkpoint, res.final_dir

- :mod:`rrg_lite.train.schedules` — ``lr_multiplier``, ``make_scheduler``.
- :mod:`rrg_lite.train.checkpoint` — the run-folder layout, ``latest_checkpoint``, ``verify_checkpoint``,
  ``save_training_state`` / ``load_training_state`` (Accelerate), ``save_final_weights`` / ``load_final_weights``,
  ``save_model_weights`` / ``load_model_weights`` (safetensors), ``CheckpointError`` (names the file).
- :mod:`rrg_lite.train.evaluate` — ``generate_reports(mllm, examples, batch_size, ...) -> list[str]`` (left
  padding, greedy or sampling, on the model's device, sharded over processes under ``accelerate launch``) and
  ``score_generated(predictions, references)`` with :mod:`rrg_lite.metrics`.
- :mod:`rrg_lite.train.dpo`, :mod:`rrg_lite.train.preference` — DPO (owned by the DPO chapter).

Batched inference everywhere goes through :func:`rrg_lite.mllm.inference.batched_inference`; a trained MLLM is
handed to another chapter with :func:`rrg_lite.mllm.saving.save_pretrained_mllm` / ``load_mllm``.
"""
