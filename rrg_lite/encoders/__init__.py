"""Vision encoders: images or volumes in, patch tokens out (import from the submodules).

Every encoder here is an ``nn.Module`` with ``forward(x (m, C, *spatial)) -> (m, N, E)`` and the attributes
``spatial_dims`` (2 or 3), ``in_channels`` (C), ``img_size``, ``num_patches`` (N), ``embed_dim`` (E), which is
what :class:`rrg_lite.mllm.model.MultimodalLM` needs. A CT split into T frames is encoded frame by frame by the
MLLM, giving features (B, T, N, E).

- :mod:`rrg_lite.encoders.vit` — ``ViT(spatial_dims, img_size, patch_size, ...)``, ``vit2d``, ``vit3d``: small
  ViTs for the CPU profile (patch size, depth, width configurable; ``patch_embed="conv_stem"`` is the hybrid
  ViT the book's world-trained encoders use — a small strided CNN makes the tokens; ``"conv_max"`` /
  ``"voxel_max"`` are per-patch stems with a max, so one-voxel findings survive patchification).
- :mod:`rrg_lite.encoders.pretrain` — a stand-in for pre-training: ``train_label_probe`` / ``pretrain_on_labels``
  (multi-label head on pooled patch tokens), ``probe_auc`` / ``label_auc`` (what the frozen features can see),
  ``extract_features`` (features computed once for a frozen encoder).
- :mod:`rrg_lite.encoders.hub` — ``get_encoder(modality)``: the one call every chapter uses for its encoder
  (``"ct"``, ``"xray_frontal"``, ``"xray_lateral"``), pre-trained on the world once per configuration and cached
  on disk (safetensors + JSON, keyed by spec + world); ``bundle.features(images)`` -> (n, 1, N, E).
- :mod:`rrg_lite.encoders.data` — world studies as encoder training data: images, labels, dense per-patch
  targets from the lesion masks, lesion sizes, reports.
- :mod:`rrg_lite.encoders.teach` — ``pretrain_encoder``: labels + dense targets + CLIP (InfoNCE from
  :mod:`rrg_lite.train.contrastive`) on a :class:`~rrg_lite.encoders.teach.SeeingEncoder` (per-voxel
  standardisation + ViT); ``occlusion_map``.
- :mod:`rrg_lite.encoders.probe`, :mod:`rrg_lite.encoders.evaluate` — linear probe on frozen features, AUC per
  label / by lesion size / bootstrap interval, shuffled-label control, report↔image retrieval.
- :mod:`rrg_lite.encoders.text` — a hashed word-n-gram report encoder (the CPU CLIP text tower).
- :mod:`rrg_lite.encoders.pretrained` — the papers' encoders at full scale, loaded only from a path/id you give:
  ``m3d_clip_vit`` (MONAI's 3-D ViT, M3D-CLIP sizes), ``rad_dino`` (a 🤗 ``Dinov2Model``), ``radfm_vit3d``
  (RadFM's 3-D ViT sizes, linear patch embedding); all buildable from random small configs for tests.
"""
