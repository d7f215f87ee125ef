"""The on-disk frozen-feature cache: hit and miss, keys that change with encoder / data / preprocessing, lazy
reads by index, atomic writes (a crash leaves nothing that looks valid), readers in DataLoader workers."""
import pytest
import torch
from torch import nn

from rrg_lite.encoders.features import (FeatureCache, FeatureCacheError, build_feature_cache, cache_key,
                                        encoder_identity, open_feature_cache)


class Enc(nn.Module):
    """(B, 4) -> (B, 3, 2) tokens; counts its calls."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(4, 6)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x).reshape(len(x), 3, 2)


def _data(n=10):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(0))


IDS = [f"study_{i}" for i in range(10)]


def test_miss_then_hit_with_the_right_features(tmp_path):
    enc, x = Enc(), _data()
    cache = build_feature_cache(enc, x, tmp_path, ids=IDS, preprocessing={"shape": [4]}, batch_size=3, shard_size=4)
    assert enc.calls == 4 and len(cache) == 10 and cache.ids == IDS
    with torch.no_grad():
        want = enc(x)
    torch.testing.assert_close(cache.stack(), want)
    assert sorted(p.name for p in (tmp_path / cache.key).iterdir()) == \
        ["index.json", "shard_00000.safetensors", "shard_00001.safetensors", "shard_00002.safetensors"]
    again = build_feature_cache(enc, x, tmp_path, ids=IDS, preprocessing={"shape": [4]}, batch_size=3, shard_size=4)
    assert enc.calls == 5 and again.key == cache.key             # a hit: the encoder did not run again (4 + `want`)
    build_feature_cache(enc, x, tmp_path, ids=IDS, preprocessing={"shape": [4]}, overwrite=True)
    assert enc.calls == 7                                         # overwrite recomputes (10 items, batch 8)


def test_key_changes_with_encoder_data_and_preprocessing(tmp_path):
    enc = Enc()
    base = cache_key(encoder_identity(enc, "vit"), IDS, {"shape": [4]})
    assert cache_key(encoder_identity(Enc(seed=1), "vit"), IDS, {"shape": [4]}) != base     # other weights
    assert cache_key(encoder_identity(enc, "other"), IDS, {"shape": [4]}) != base           # other name
    assert cache_key(encoder_identity(enc, "vit"), IDS[::-1], {"shape": [4]}) != base       # other order of data
    assert cache_key(encoder_identity(enc, "vit"), IDS[:-1], {"shape": [4]}) != base        # other data
    assert cache_key(encoder_identity(enc, "vit"), IDS, {"shape": [8]}) != base             # other preprocessing
    assert cache_key(encoder_identity(enc, "vit"), IDS, {"shape": [4]}, dtype="float16") != base
    assert cache_key(encoder_identity(enc, "vit"), IDS, {"shape": [4]}) == base             # deterministic
    # a key mismatch is a miss: the features are recomputed for the new weights, into another folder
    x = _data()
    a = build_feature_cache(enc, x, tmp_path, ids=IDS)
    other = Enc(seed=1)
    b = build_feature_cache(other, x, tmp_path, ids=IDS)
    assert other.calls > 0 and a.key != b.key
    with torch.no_grad():
        torch.testing.assert_close(b.stack(), other(x))
    with pytest.raises(FeatureCacheError, match="is not the expected"):
        FeatureCache(tmp_path / a.key, expect_key=b.key)


def test_reads_are_lazy_and_items_may_differ_in_length(tmp_path):
    enc = Enc()

    def frames(encoder, batch):  # item i has i % 3 + 1 frames of (2,) — like volumes of different depth
        out = encoder(batch)
        return [out[j, : int(batch[j, 0].abs() * 10) % 3 + 1] for j in range(len(batch))]

    x = _data()
    cache = build_feature_cache(enc, x, tmp_path, ids=IDS, encode=frames, shard_size=2, dtype=torch.float16)
    reader = FeatureCache(tmp_path / cache.key)
    assert reader.open_shards == 0
    item = reader[7]
    assert reader.open_shards == 1                                 # only item 7's shard was opened
    with torch.no_grad():
        want = frames(enc, x)[7].half()
    assert item.dtype == torch.float16 and torch.equal(item, want)
    assert reader[-1].shape[1:] == (2,)
    with pytest.raises(IndexError):
        reader[10]


def test_readers_work_in_dataloader_workers(tmp_path):
    x = _data()
    cache = build_feature_cache(Enc(), x, tmp_path, ids=IDS, shard_size=3)
    loader = torch.utils.data.DataLoader(cache, batch_size=4, num_workers=2)
    torch.testing.assert_close(torch.cat(list(loader)), cache.stack())


def test_a_crashed_write_leaves_no_valid_looking_cache(tmp_path):
    enc, x = Enc(), _data()

    def crash_on_third_batch(encoder, batch):
        if encoder.calls == 2:
            raise RuntimeError("killed")
        return list(encoder(batch).unbind(0))

    with pytest.raises(RuntimeError, match="killed"):
        build_feature_cache(enc, x, tmp_path, ids=IDS, encode=crash_on_third_batch, batch_size=3, shard_size=1)
    key = cache_key(encoder_identity(enc), IDS, None, "as_computed")
    assert open_feature_cache(tmp_path, key) is None and not list(tmp_path.iterdir())
    # a hard kill (no Python cleanup) leaves only the temporary folder, without index.json: not a cache
    partial = tmp_path / f".tmp-{key}-99999"
    partial.mkdir()
    (partial / "shard_00000.safetensors").write_bytes(b"\0" * 64)
    assert open_feature_cache(tmp_path, key) is None
    with pytest.raises(FeatureCacheError, match="no index.json"):
        FeatureCache(partial)
    good = build_feature_cache(enc, x, tmp_path, ids=IDS, shard_size=4)      # the next run computes it properly
    assert good.key == key and len(good) == 10
    # and a shard truncated later is named
    shard = tmp_path / key / "shard_00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.raises(FeatureCacheError, match=r"shard_00001.safetensors: missing or not \d+ bytes"):
        FeatureCache(tmp_path / key)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="3 ids for 10 items"):
        build_feature_cache(Enc(), _data(), tmp_path, ids=IDS[:3])
    with pytest.raises(ValueError, match="unique"):
        build_feature_cache(Enc(), _data(2), tmp_path, ids=["a", "a"])


def test_two_writers_of_one_key_both_finish(tmp_path, monkeypatch):
    import rrg_lite.encoders.features as features

    enc, x = Enc(), _data()
    first = build_feature_cache(enc, x, tmp_path, ids=IDS)
    # a second writer that started before the first one finished (its cache check missed)
    monkeypatch.setattr(features, "open_feature_cache", lambda root, key: None)
    second = build_feature_cache(enc, x, tmp_path, ids=IDS)
    assert second.key == first.key and [p.name for p in tmp_path.iterdir()] == [first.key]  # no .tmp- left
    torch.testing.assert_close(second.stack(), first.stack())


def test_features_are_computed_on_the_encoder_device(tmp_path):
    """Batches follow the encoder: here its parameters live on `meta` (shape-only), so the DataLoader's CPU batch
    must be moved there before the forward; the encode function records what it got."""
    class MetaEnc(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2, device="meta"))

    seen = []

    def encode(encoder, batch):
        seen.append((batch.device.type, encoder.training, torch.is_grad_enabled()))
        return [torch.zeros(1, 2) for _ in range(len(batch))]   # features on the CPU (meta holds no data)

    enc = MetaEnc().train()
    build_feature_cache(enc, _data(5), tmp_path, ids=IDS[:5], encode=encode, batch_size=2, weights_id="w0")
    assert seen == [("meta", False, False)] * 3 and enc.training
