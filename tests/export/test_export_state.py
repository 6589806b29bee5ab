"""The exported file's stream as a host (or a careless user) drives it: any buffer size, refused buffers,
per-item resets."""

from __future__ import annotations

import pytest
import torch
from export_models import CoarseCodec, PoolNet, build
from typer.testing import CliRunner

from streamify.cli import app
from streamify.export import export_nn_tilde, read_info

runner = CliRunner()


def _stream(call, x: torch.Tensor, n: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([call(x[..., i : i + n]) for i in range(0, x.size(-1), n)], -1)


@pytest.fixture(scope="module")
def coarse(tmp_path_factory):
    torch.set_num_threads(1)
    model = build(CoarseCodec)
    path = tmp_path_factory.mktemp("coarse") / "coarse.ts"
    export_nn_tilde(model, path, torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(0)))
    return model, path


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    torch.set_num_threads(1)
    model = build(PoolNet)
    path = tmp_path_factory.mktemp("pool") / "pool.ts"
    export_nn_tilde(model, path, torch.randn(1, 1, 1024, generator=torch.Generator().manual_seed(0)))
    return model, path


def test_any_host_buffer_size_gives_offline_delayed_by_the_reported_latency(coarse):
    model, path = coarse
    fields = read_info(path)["methods"]["forward"]
    assert fields["buffer_multiple_samples"] == 2048
    assert fields["checked_buffer_sizes"] == [256, 512, 1024, 2048, 4096, 8192]
    extra = fields["buffering_latency_samples"]
    assert extra == {"256": 1792, "512": 1536, "1024": 1024, "2048": 0, "4096": 0, "8192": 0}
    loaded = torch.jit.load(str(path))
    flat = loaded.get_streamify_info()  # what a host reads from the file itself
    assert flat["forward.buffering_latency_samples"] == "256:1792,512:1536,1024:1024,2048:0,4096:0,8192:0"
    x = torch.randn(2, 1, 8 * 2048, generator=torch.Generator().manual_seed(1))
    offline = model(x).detach()
    for n in (256, 1024, 4096):
        loaded.reset_streams()
        y = _stream(loaded.forward, x, n)
        lag = fields["delay_samples"] + extra[str(n)]
        assert y.shape == x.shape
        assert torch.all(y[..., :lag] == 0)  # a fresh stream is silent for exactly the reported latency ...
        error = (y[..., lag:] - offline[..., : x.size(-1) - lag]).abs().max()
        assert error <= 1e-5 * offline.abs().max(), n  # ... then it is the offline output
        assert (y[..., lag - 1 : lag + 64] != 0).any()  # and not silent one sample longer
    result = runner.invoke(app, ["info", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the caption wraps
    assert "256: +1792" in text and "1024: +1024" in text
    # the rule, not "others 0": 64 adds 1984, 1000 adds 2040
    assert "others 0" not in text and "2048 - gcd(n, 2048)" in text and "0 for multiples of 2048" in text


def test_per_item_reset_with_input_held_back_restarts_the_item_exactly(coarse):
    _, path = coarse
    loaded = torch.jit.load(str(path))
    n = 256  # 8 buffers per 2048-sample multiple: input is held back between aligned calls
    x = torch.randn(2, 1, 24 * n, generator=torch.Generator().manual_seed(2))
    whole = _stream(loaded.forward, x, n)
    loaded.reset_streams()
    with torch.inference_mode():
        head = [loaded.forward(x[..., i * n : (i + 1) * n]) for i in range(3)]
        loaded.reset_items([1, 5])  # item 5 is past the batch: ignored; item 1 restarts at the next aligned call
        tail = [loaded.forward(x[..., i * n : (i + 1) * n]) for i in range(3, 24)]
    y = torch.cat(head + tail, -1)
    assert torch.equal(y[:1], whole[:1])  # the other item goes on untouched
    aligned = 8 * n  # the first call that starts with no input held back
    assert torch.equal(y[1:, :, :aligned], whole[1:, :, :aligned])
    loaded.reset_streams()
    fresh = _stream(loaded.forward, x[1:, :, aligned:], n)
    torch.testing.assert_close(y[1:, :, aligned:], fresh, rtol=0, atol=1e-6)  # batch 2 vs 1: rounding only


def test_refused_buffers_leave_the_stream_untouched(pooled):
    model, path = pooled
    loaded = torch.jit.load(str(path))
    n = 256
    x = torch.randn(1, 1, 8 * n, generator=torch.Generator().manual_seed(3))
    whole = _stream(loaded.forward, x, n)
    loaded.reset_streams()
    bad = {  # what is wrong with each
        "1 dimension": torch.zeros(n),
        "2 dimensions": torch.zeros(n, 1),
        "input channels": torch.zeros(2, 3, n),
        "float64": torch.zeros(2, 1, n, dtype=torch.float64),
        "length 0": torch.zeros(2, 1, 0),
        "no batch item": torch.zeros(0, 1, n),
    }
    out = []
    with torch.inference_mode():
        for i in range(8):
            out.append(loaded.forward(x[..., i * n : (i + 1) * n]))
            if i == 3:
                for buffer in bad.values():
                    with pytest.raises(torch.jit.Error, match="streamify"):
                        loaded.forward(buffer)
    # the refused buffers (several with another batch size) restarted nothing: the stream went on as if unseen
    assert torch.equal(torch.cat(out, -1), whole)
    delay = read_info(path)["methods"]["forward"]["delay_samples"]
    offline = model(x).detach()
    assert (whole[..., delay:] - offline[..., : x.size(-1) - delay]).abs().max() <= 1e-5 * offline.abs().max()


def test_wrong_dtype_error_names_the_dtypes(pooled):
    _, path = pooled
    loaded = torch.jit.load(str(path))
    with pytest.raises(torch.jit.Error, match="expected dtype float32, got float64") as refused:
        loaded.forward(torch.zeros(1, 1, 256, dtype=torch.float64))
    assert "dtype 6" not in str(refused.value) and "got 7" not in str(refused.value)
    with pytest.raises(torch.jit.Error, match="expected dtype float32, got int32"):
        loaded.forward(torch.zeros(1, 1, 256, dtype=torch.int32))


def test_per_item_reset_restores_a_max_pool_to_minus_infinity(pooled):
    _, path = pooled
    loaded = torch.jit.load(str(path))
    n = 256
    x = torch.randn(3, 1, 8 * n, generator=torch.Generator().manual_seed(4))
    whole = _stream(loaded.forward, x, n)
    loaded.reset_streams()
    with torch.inference_mode():
        head = [loaded.forward(x[..., i * n : (i + 1) * n]) for i in range(4)]
        assert loaded.set_reset_item(1) == 0
        assert loaded.set_reset_item(3) == 0 and loaded.set_reset_item(64) == 0  # at or past the batch: ignored
        tail = [loaded.forward(x[..., i * n : (i + 1) * n]) for i in range(4, 6)]
        loaded.reset_items([2, 3, 1000])  # immediate reset of item 2; 3 and 1000 ignored, no exception
        tail += [loaded.forward(x[..., i * n : (i + 1) * n]) for i in range(6, 8)]
    y = torch.cat(head + tail, -1)
    assert torch.equal(y[:1], whole[:1])
    loaded.reset_streams()
    fresh_1 = _stream(loaded.forward, x[1:2, :, 4 * n :], n)
    loaded.reset_streams()
    fresh_2 = _stream(loaded.forward, x[2:3, :, 6 * n :], n)
    torch.testing.assert_close(y[1:2, :, 4 * n :], fresh_1, rtol=0, atol=1e-6)
    torch.testing.assert_close(y[2:3, :, 6 * n :], fresh_2, rtol=0, atol=1e-6)
    # the reset items differ from the uninterrupted run (the test would see a reset that did nothing)
    assert not torch.allclose(y[1:2, :, 4 * n :], whole[1:2, :, 4 * n :])
