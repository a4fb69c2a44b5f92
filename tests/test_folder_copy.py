"""singan.cluster.folder_copy: what a folder run's node sends its driver, and how the driver
checks it (as if a stranger sent it) before writing anything."""
import pytest
import torch

from singan.cluster import folder_copy
from singan.cluster.folder_copy import Mirror, checked_batch, read_files, write_batch
from singan.checkpoint import content_digest, save_checkpoint, save_torch
from singan.errors import SinGANError


def checkpoint_bytes(tmp_path, name="model.pth") -> bytes:
    path = tmp_path / "src" / name
    body = {"format_version": 2, "scales": [], "method": "singan", "w": torch.arange(4.0)}
    if name == "running_stage.pth":
        body = {"format_version": 2, "kind": "running stage", "w": torch.arange(4.0)}
    save_checkpoint(path, body)
    return path.read_bytes()


def test_mirror_sends_what_changed_checkpoint_last_and_removals_at_the_end(tmp_path):
    folder = tmp_path / "m"
    (folder / "0").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    held = read_files(folder)
    mirror = Mirror(folder, held=held)
    assert mirror.changes() == []                      # the other side has it all
    (folder / "model.pth").write_bytes(b"model")
    (folder / "0" / "netG.pth").write_bytes(b"g")
    (folder / ".model.pth.abc.tmp").write_bytes(b"half")   # a temporary: never sent
    assert mirror.changes() == [("0/netG.pth", b"g"), ("model.pth", b"model")]
    assert mirror.changes() == []
    (folder / "config.json").unlink()
    (folder / "0" / "netG.pth").write_bytes(b"g2")
    assert mirror.changes() == [("0/netG.pth", b"g2"), ("config.json", None)]


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "a/../../b", ".hidden",
                                  "a\\b", "a//b", "./a", "a/b/c/d/e/f", "", "x" * 300, 7])
def test_names_outside_the_folder_are_refused(name):
    with pytest.raises(SinGANError, match="refused a file"):
        checked_batch([(name, b"x")], "TrainedModels/a")


def test_a_batch_is_checked_whole_before_anything_is_written(tmp_path, monkeypatch):
    good = checkpoint_bytes(tmp_path)
    weights = torch.arange(4.0).numpy().tobytes()      # the tensor's bytes, stored as they are
    assert good.count(weights) == 1
    damaged = good.replace(weights, torch.tensor([0.0, 1.0, 2.0, 5.0]).numpy().tobytes())
    for batch, words in [
            ("not a list", "not a list"),
            ([("a.png", "text")], "not bytes"),
            ([("model.pth", damaged)], "corrupted: its contents do not match"),
            ([("model.pth", b"")], "empty"),
            ([("0/netG.pth", b"\x80\x02cos\nsystem\n")], "not a readable"),
            ([("running_stage.pth", good)], "not a running stage"),
            ([("config.json", b"{}")] * (folder_copy.MAX_BATCH_FILES + 1), "at most")]:
        with pytest.raises(SinGANError, match=words):   # noqa: PT012
            write_batch(tmp_path / "dest", checked_batch(batch, "dest"))
    monkeypatch.setattr(folder_copy, "MAX_FILE_BYTES", 10)
    with pytest.raises(SinGANError, match="more than"):
        checked_batch([("0.png", b"x" * 11)], "dest")
    assert not (tmp_path / "dest").exists()


def test_samples_only_inside_their_images_folders(tmp_path):
    inside = ["RandomSamples/a", "RandomSamples_ArbitrerySizes/a"]
    ok = [("RandomSamples/a/gen_start_scale=0/0.png", b"p"),
          ("RandomSamples/a/gen_start_scale=0_grid.png", b"g")]
    assert checked_batch(ok, "Output", inside) == ok
    for name in ("RandomSamples/b/gen_start_scale=0/0.png", "a_summary.csv",
                 "RandomSamples/a"):
        with pytest.raises(SinGANError, match="outside"):
            checked_batch([(name, b"x")], "Output", inside)


def test_checkpoints_arrive_whole_and_removals_remove(tmp_path):
    model, running = checkpoint_bytes(tmp_path), checkpoint_bytes(tmp_path, "running_stage.pth")
    dest = tmp_path / "dest"
    save_torch(tmp_path / "src" / "netG.pth", {"w": torch.ones(2)})
    batch = [("0/netG.pth", (tmp_path / "src" / "netG.pth").read_bytes()),
             ("model.pth", model), ("running_stage.pth", running)]
    write_batch(dest, checked_batch(batch, "dest"))
    assert read_files(dest) == dict(batch)
    write_batch(dest, checked_batch([("running_stage.pth", None)], "dest"))
    assert sorted(read_files(dest)) == ["0/netG.pth", "model.pth"]
    loaded = torch.load(dest / "model.pth", weights_only=True)
    assert loaded["sha256"] == content_digest({k: v for k, v in loaded.items() if k != "sha256"})


def test_nothing_is_written_through_a_link_out_of_the_folder(tmp_path):
    """A folder on the way that is a link (the driver's own disk may hold one) leads the
    write elsewhere: the whole batch is refused, nothing written."""
    dest, elsewhere = tmp_path / "dest", tmp_path / "elsewhere"
    (dest / "ok").mkdir(parents=True)
    elsewhere.mkdir()
    (dest / "0").symlink_to(elsewhere, target_is_directory=True)
    (dest / "config.json").symlink_to(elsewhere / "config.json")
    for batch in ([("ok/a.png", b"a"), ("0/noise.png", b"x")], [("config.json", b"{}")]):
        with pytest.raises(SinGANError, match="leads out of it"):
            write_batch(dest, checked_batch(batch, "dest"))
    assert not list(elsewhere.iterdir()) and not (dest / "ok" / "a.png").exists()


def test_what_a_batch_adds_and_a_finished_model(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.png").write_bytes(b"x" * 100)
    assert folder_copy.batch_growth(dest, [("old.png", b"y" * 30), ("new.png", b"z" * 50)]) \
        == -70 + 50
    assert folder_copy.batch_growth(dest, [("old.png", None)]) == -100
    model = checkpoint_bytes(tmp_path)                    # no levels planned, none trained
    assert not folder_copy.finished_model(model)
    path = tmp_path / "src" / "full.pth"
    save_checkpoint(path, {"format_version": 2, "method": "singan", "scales": [{}, {}],
                           "reals": [torch.zeros(1), torch.zeros(1)]})
    assert folder_copy.finished_model(path) and folder_copy.finished_model(path.read_bytes())
    save_checkpoint(path, {"format_version": 2, "method": "singan", "scales": [{}],
                           "reals": [torch.zeros(1), torch.zeros(1)]})
    assert not folder_copy.finished_model(path)            # one level of two: unfinished
    assert not folder_copy.finished_model(b"not a checkpoint")
