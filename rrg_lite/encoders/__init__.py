"""Vision encoders: images or volumes in, patch tokens out (import from the submodules).

Every encoder here is an ``nn.Module`` with ``forward(x (m, C, *spatial)) -> (m, N, E)`` and the attributes
``spatial_dims`` (2 or 3), ``in_channels`` (C), ``img_size``, ``num_patches`` (N), ``embed_dim`` (E), which is
what :class:`rrg_lite.mllm.model.MultimodalLM` needs. A CT split into T frames is encoded frame by frame by the
MLLM, giving features (B, T, N, E).

- :mod:`rrg_lite.encoders.vit` — ``ViT(spatial_dims, img_size, patch_size, ...)``, ``vit2d``, ``vit3d``: small
  ViTs for the CPU profile (patch size, depth, width configurable; ``patch_embed="conv_max"`` adds a small
  conv stem with a max over each patch, so one-voxel findings survive patchification).
- :mod:`rrg_lite.encoders.pretrain` — a stand-in for pre-training: ``train_label_probe`` / ``pretrain_on_labels``
  (multi-label head on pooled patch tokens), ``probe_auc`` / ``label_auc`` (what the frozen features can see),
  ``extract_features`` (features computed once for a frozen encoder).
- :mod:`rrg_lite.encoders.pretrained` — the papers' encoders at full scale, loaded only from a path/id you give:
  ``m3d_clip_vit`` (MONAI's 3-D ViT, M3D-CLIP sizes), ``rad_dino`` (a 🤗 ``Dinov2Model``), ``radfm_vit3d``
  (RadFM's 3-D ViT sizes, linear patch embedding); all buildable from random small configs for tests.
"""
