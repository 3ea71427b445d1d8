"""app/compute/models.py: the app's bounded, thread-safe, process-wide cache of loaded models."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import RES, schedule_for

from app.compute import models as model_cache
from app.compute.models import ModelCache
from model.nets import checkpoint_io, network
from model.nets.checkpoint_io import ModelLoadError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------
# Cache: bound, LRU order, one load per model under concurrency
# ---------------------------------------------------------------------------------


def test_lru_cache_is_bounded_and_evicts_least_recent():
    loads = []

    def loader(kind, where, progress, device):
        loads.append(where)
        return object()

    cache = ModelCache(2, loader=loader)
    a = cache.get("o/a")
    cache.get("o/b")
    assert cache.get("o/a") is a  # hit; "o/b" is now least recent
    cache.get("o/c")
    assert len(cache) == 2 and {k[1] for k in cache.keys()} == {"o/a", "o/c"}
    cache.get("o/b")  # evicted earlier, so loaded again
    assert loads == ["o/a", "o/b", "o/c", "o/b"]
    assert model_cache.MAX_CACHED_MODELS == model_cache._CACHE.maxsize == 3


def test_same_model_requested_concurrently_loads_once():
    loads = []

    def slow_loader(kind, where, progress, device):
        loads.append(where)
        time.sleep(0.2)
        return object()

    cache = ModelCache(2, loader=slow_loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("o/same"))) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert loads == ["o/same"] and len(got) == 6 and all(g is got[0] for g in got)


def test_failed_loads_are_not_cached():
    attempts = []

    def flaky(kind, where, progress, device):
        attempts.append(1)
        if len(attempts) == 1:
            raise ModelLoadError("offline.")
        return object()

    cache = ModelCache(2, loader=flaky)
    with pytest.raises(ModelLoadError):
        cache.get("o/x")
    assert cache.get("o/x") is not None and len(attempts) == 2


def test_get_model_shares_one_instance_and_reloads_resaved_folder(tmp_path, reference_unet):
    folder = checkpoint_io.save_model(reference_unet, schedule_for("epsilon"), tmp_path / "m")
    m = model_cache.get_model(folder)
    assert model_cache.get_model(str(folder)) is m
    assert network.load_model(folder) is not m  # the library loads; only the app shares
    time.sleep(0.01)
    checkpoint_io.save_model(checkpoint_io.tiny_unet(RES, seed=5), schedule_for("sample"), folder)
    m2 = model_cache.get_model(folder)
    assert m2 is not m and m2.schedule.prediction_type == "sample"
