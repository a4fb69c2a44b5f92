"""singan.checkpoint's edges, each from a fact stated here: the checksum that model.pth carries
(its byte format is frozen: files already on users' disks must keep verifying), what a
damaged, foreign, newer or received checkpoint gives, the envelope's fields, and the JSON
files beside a model."""
import hashlib
import json

import pytest
import torch

from singan.checkpoint import (CHECKSUM_KEY, FORMAT_VERSION, content_digest, envelope,
                               load_torch, read_checkpoint, read_running, save_checkpoint,
                               save_torch, write_json)
from singan.errors import SinGANError


def frozen_digest(obj) -> str:
    """The checksum's byte format, transcribed here from the format that model.pth files carry
    since format 2 (not computed by singan): '{' key value ... '}' for a dict, '[' ... ']' for
    a list or tuple, 'T<dtype><shape>' and the raw bytes for a tensor, repr + ';' otherwise."""
    parts = []

    def feed(x):
        if isinstance(x, torch.Tensor):
            parts.append(f"T{x.dtype}{tuple(x.shape)}".encode())
            parts.append(bytes(x.contiguous().reshape(-1).view(torch.uint8).tolist()))
        elif isinstance(x, dict):
            parts.append(b"{")
            for k, v in x.items():
                feed(k)
                feed(v)
            parts.append(b"}")
        elif isinstance(x, (list, tuple)):
            parts.append(b"[")
            for v in x:
                feed(v)
            parts.append(b"]")
        else:
            parts.append(repr(x).encode() + b";")
    feed(obj)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def test_the_checksum_keeps_its_byte_format():
    obj = {"format_version": 2, "scales": [1, (2.5, "x")], "w": torch.arange(6.).view(2, 3),
           "i": torch.tensor([7], dtype=torch.int64), "none": None}
    assert content_digest(obj) == frozen_digest(obj)
    assert content_digest({}) == hashlib.sha256(b"{}").hexdigest()
    assert content_digest([1]) == hashlib.sha256(b"[1;]").hexdigest()


@pytest.mark.parametrize("other, same", [
    ({"a": torch.tensor([1., 2.]), "b": [3]}, True),       # the same contents
    ({"a": torch.tensor([1., 2.]), "b": (3,)}, True),      # a tuple for a list: the same
    ({"a": torch.tensor([1., 2.5]), "b": [3]}, False),     # a tensor's value
    ({"a": torch.tensor([1, 2]), "b": [3]}, False),        # its dtype
    ({"a": torch.tensor([[1., 2.]]), "b": [3]}, False),    # its shape
    ({"a": torch.tensor([1., 2.]), "b": [4]}, False),      # another value
    ({"b": [3], "a": torch.tensor([1., 2.])}, False),      # the order of the keys
    ({"a": torch.tensor([1., 2.]), "b": [[3]]}, False),    # nesting
    ({"a": torch.tensor([1., 2.]), "b": "[3]"}, False),    # a string that looks like a list
])
def test_the_checksum_sees_every_change_of_contents(other, same):
    base = {"a": torch.tensor([1., 2.]), "b": [3]}
    assert (content_digest(other) == content_digest(base)) == same


def _ckpt(**extra):
    return {"format_version": FORMAT_VERSION, "method": "singan", "scales": [{"w": torch.ones(2)}],
            **extra}


def test_a_saved_checkpoint_reads_back_verified_without_its_checksum(tmp_path):
    save_checkpoint(tmp_path / "model.pth", _ckpt())
    raw = torch.load(tmp_path / "model.pth", weights_only=True)
    assert raw[CHECKSUM_KEY] == frozen_digest(_ckpt())        # stored beside the contents
    back = read_checkpoint(tmp_path / "model.pth")
    assert CHECKSUM_KEY not in back and back["method"] == "singan"
    assert torch.equal(back["scales"][0]["w"], torch.ones(2))
    # saving a loaded checkpoint again (its checksum dropped first) verifies too
    loaded = dict(raw)
    save_checkpoint(tmp_path / "again.pth", loaded)
    assert read_checkpoint(tmp_path / "again.pth")["format_version"] == FORMAT_VERSION


def test_received_bytes_read_as_the_file_would(tmp_path):
    save_checkpoint(tmp_path / "model.pth", _ckpt())
    data = (tmp_path / "model.pth").read_bytes()
    named = tmp_path / "elsewhere" / "model.pth"                 # never on this disk
    assert read_checkpoint(named, data)["method"] == "singan"
    with pytest.raises(SinGANError) as err:
        read_checkpoint(named, b"")
    assert str(err.value) == (f"{named} is empty (0 bytes): the model is incomplete; "
                              "retrain it")
    with pytest.raises(SinGANError, match="not a readable SinGAN checkpoint"):
        load_torch(named, data[:len(data) // 2])


def test_a_damaged_checksum_is_refused(tmp_path):
    ckpt = _ckpt()
    save_torch(tmp_path / "model.pth", {**ckpt, CHECKSUM_KEY: "0" * 64})
    with pytest.raises(SinGANError) as err:
        read_checkpoint(tmp_path / "model.pth")
    assert str(err.value) == (f"{tmp_path / 'model.pth'} is corrupted: its contents do not "
                              "match the checksum saved with it (damaged on disk or in a "
                              "copy); retrain with --force, or restore a backup")


def test_one_changed_value_under_a_kept_checksum_is_refused(tmp_path):
    save_checkpoint(tmp_path / "model.pth", _ckpt())
    raw = torch.load(tmp_path / "model.pth", weights_only=True)
    raw["scales"][0]["w"][1] = 2.0
    save_torch(tmp_path / "model.pth", raw)
    with pytest.raises(SinGANError, match="is corrupted"):
        read_checkpoint(tmp_path / "model.pth")


def test_a_checkpoint_without_a_checksum_still_reads(tmp_path):
    """Files saved before the checksum existed (format 1) carry none: they load unverified."""
    save_torch(tmp_path / "model.pth", {"format_version": 1, "scales": []})
    assert read_checkpoint(tmp_path / "model.pth") == {"format_version": 1, "scales": []}


@pytest.mark.parametrize("content", [[1, 2], {"scales": []}, {"format_version": 2}])
def test_foreign_contents_are_not_a_checkpoint(tmp_path, content):
    save_torch(tmp_path / "model.pth", content)
    with pytest.raises(SinGANError) as err:
        read_checkpoint(tmp_path / "model.pth")
    assert str(err.value) == (f"{tmp_path / 'model.pth'} is not a singan checkpoint (no "
                              "format_version); retrain, or use --force")


def test_a_newer_format_asks_for_a_newer_singan(tmp_path):
    save_checkpoint(tmp_path / "model.pth", _ckpt(format_version=FORMAT_VERSION + 1))
    with pytest.raises(SinGANError) as err:
        read_checkpoint(tmp_path / "model.pth")
    assert str(err.value) == (f"{tmp_path / 'model.pth'} was written by a newer singan (format "
                              f"{FORMAT_VERSION + 1} > {FORMAT_VERSION}); update singan")
    save_checkpoint(tmp_path / "same.pth", _ckpt(format_version=FORMAT_VERSION))
    assert read_checkpoint(tmp_path / "same.pth")["format_version"] == 2


def test_a_running_stage_is_read_only_as_one(tmp_path):
    stage = {"kind": "running stage", "stage": 3, "state": torch.zeros(2)}
    save_checkpoint(tmp_path / "running_stage.pth", stage)
    back = read_running(tmp_path / "running_stage.pth")
    assert back["stage"] == 3 and CHECKSUM_KEY not in back
    for bad in ({"kind": "something else"}, {"kind": "running stage"}):
        save_torch(tmp_path / "bad.pth", bad)                    # the second: no checksum
        with pytest.raises(SinGANError) as err:
            read_running(tmp_path / "bad.pth")
        assert str(err.value) == f"{tmp_path / 'bad.pth'} is not a running stage's checkpoint"
    save_torch(tmp_path / "list.pth", [1])
    with pytest.raises(SinGANError, match="not a running stage's checkpoint"):
        read_running(tmp_path / "list.pth")
    save_torch(tmp_path / "damaged.pth", {**stage, CHECKSUM_KEY: "0" * 64})
    with pytest.raises(SinGANError) as err:
        read_running(tmp_path / "damaged.pth")
    assert str(err.value).startswith(f"{tmp_path / 'damaged.pth'} is corrupted: ")
    # received bytes (a folder run's node sent them) read as the file does
    data = (tmp_path / "running_stage.pth").read_bytes()
    assert read_running(tmp_path / "not-here.pth", data)["stage"] == 3
    save_checkpoint(tmp_path / "newer.pth", {**stage, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(SinGANError, match="newer singan"):
        read_running(tmp_path / "newer.pth")


def test_folders_and_missing_files_are_named(tmp_path):
    with pytest.raises(SinGANError) as err:
        load_torch(tmp_path)
    assert str(err.value) == f"{tmp_path} is a folder, not a checkpoint file"
    with pytest.raises(SinGANError) as err:
        load_torch(tmp_path / "none.pth")
    assert str(err.value) == f"missing file: {tmp_path / 'none.pth'}"


def test_an_unreadable_file_quotes_the_first_line_of_the_reason(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"not a zip at all")
    with pytest.raises(SinGANError) as err:
        load_torch(tmp_path / "x.pth")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'x.pth'} is not a readable SinGAN checkpoint (")
    assert message.endswith("); it is truncated, corrupted or not ours: retrain, or use --force")
    reason = message[message.index("(") + 1:message.rindex(")")]
    assert 0 < len(reason) <= 120 and "\n" not in message


def test_load_torch_puts_tensors_on_the_cpu(tmp_path):
    save_torch(tmp_path / "x.pth", {"t": torch.ones(2)})
    assert load_torch(tmp_path / "x.pth")["t"].device.type == "cpu"


def test_the_envelope_holds_the_fields_both_methods_share():
    real = torch.ones(1, 3, 2, 2, requires_grad=True)
    config, plan, image = {"niter": 5}, {"stop_scale": 1}, {"name": "x.png"}
    env = envelope("consingan", config, plan, image, [{"k": 1}], [real * 2],
                   extra={"note": "n"})
    assert set(env) == {"format_version", "method", "config", "plan", "image", "scales",
                        "reals", "note"}
    assert env["format_version"] == FORMAT_VERSION and env["method"] == "consingan"
    assert env["config"] == config and env["config"] is not config      # copies
    assert env["plan"] == plan and env["plan"] is not plan
    assert env["image"] == image and env["image"] is not image
    assert env["scales"] == [{"k": 1}] and env["note"] == "n"
    (r,) = env["reals"]
    assert torch.equal(r, torch.full((1, 3, 2, 2), 2.0)) and not r.requires_grad
    assert "note" not in envelope("singan", {}, {}, {}, [], [])


def test_write_json_writes_indented_json_and_a_final_newline(tmp_path):
    write_json(tmp_path / "sub" / "config.json", {"a": [1, 2], "b": "x"})
    text = (tmp_path / "sub" / "config.json").read_text()
    assert text == '{\n "a": [\n  1,\n  2\n ],\n "b": "x"\n}\n'
    assert json.loads(text) == {"a": [1, 2], "b": "x"}


def test_pickled_code_never_runs_even_where_torch_load_defaults_to_pickle(tmp_path,
                                                                          monkeypatch):
    """torch < 2.6 (requirements: torch >= 2.1) unpickles anything unless told weights_only:
    load_torch must say so itself. Here torch.load gets that older default."""
    import singan.checkpoint as checkpoint
    real = torch.load

    def old_torch_load(f, map_location=None, weights_only=False):
        # torch 2.1 reads `if weights_only:`, so None unpickles as False does
        return real(f, map_location=map_location, weights_only=bool(weights_only))
    monkeypatch.setattr(checkpoint.torch, "load", old_torch_load)
    ran = []

    class Evil:
        def __reduce__(self):
            return (ran.append, ("pwned",))
    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(SinGANError, match="not a readable"):
        load_torch(tmp_path / "evil.pth")
    assert ran == []


def test_tensors_saved_on_another_device_load_on_the_cpu(tmp_path, monkeypatch):
    """A checkpoint written on a GPU loads on a machine without one: torch.load is asked to
    map its tensors to the CPU. Here a torch.load that honours map_location as the real one
    does leaves unmapped tensors on the device they were saved from ('meta' standing for a
    GPU this machine lacks)."""
    import singan.checkpoint as checkpoint
    real = torch.load

    def load_from_a_gpu(f, map_location=None, weights_only=False):
        obj = real(f, weights_only=weights_only)
        return obj if map_location == "cpu" else {k: v.to("meta") for k, v in obj.items()}
    monkeypatch.setattr(checkpoint.torch, "load", load_from_a_gpu)
    save_torch(tmp_path / "x.pth", {"t": torch.ones(2)})
    assert load_torch(tmp_path / "x.pth")["t"].device.type == "cpu"


@pytest.mark.parametrize("error, reason", [
    (RuntimeError("first line\nsecond line"), "first line"),
    (RuntimeError("  padded  \n"), "padded"),
    (EOFError(), "EOFError"),
    (ValueError("x" * 200), "x" * 120),
])
def test_the_reason_quoted_is_the_errors_first_line_or_its_type(tmp_path, monkeypatch, error,
                                                                 reason):
    import singan.checkpoint as checkpoint

    def failing(*args, **kwargs):
        raise error
    monkeypatch.setattr(checkpoint.torch, "load", failing)
    (tmp_path / "x.pth").write_bytes(b"anything")
    with pytest.raises(SinGANError) as err:
        load_torch(tmp_path / "x.pth")
    assert f"is not a readable SinGAN checkpoint ({reason}); it is" in str(err.value)


def test_saved_checkpoints_are_synced_to_the_disk(tmp_path, monkeypatch):
    """save_torch is durable: the file is fsynced before its rename is trusted."""
    import singan.image_io as image_io
    synced = []
    real = image_io.os.fsync
    monkeypatch.setattr(image_io.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    save_torch(tmp_path / "x.pth", {"a": 1})
    assert len(synced) >= 1
