"""Published weights through timm's and facenet-pytorch's own loaders, exercised offline."""

import pytest
import timm
import torch

from fer_bench.backbones import create_backbone
from fer_bench.cli import main
from fer_bench.config import RunConfig
from fer_bench.errors import FerBenchError
from fer_bench.pretrained import FaceNetBackbone, facenet_weights_file, weights_sha1
from fer_bench.runner import resolve_config

SPEC = "timm:test_resnet.r160_in1k"


@pytest.fixture(name="offline")
def offline_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_BENCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights_sha1.cache_clear()
    yield tmp_path
    weights_sha1.cache_clear()


def _published_timm_file(directory, seed=0):
    """A checkpoint as timm publishes it: the whole classifier model, ImageNet head included."""
    torch.manual_seed(seed)
    state = timm.create_model("test_resnet", pretrained=False).state_dict()
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state, directory / "test_resnet.r160_in1k.pth")
    return state


def test_timm_spec_loads_a_local_file_through_timms_loader(offline):
    state = _published_timm_file(offline / "weights")
    model, features = create_backbone("test_resnet", SPEC)
    assert features == model.num_features
    assert torch.equal(model.state_dict()["conv1.0.weight"], state["conv1.0.weight"])
    assert "fc.weight" not in model.state_dict()  # timm dropped the ImageNet head for num_classes=0


def test_timm_spec_sets_the_backbone_and_enters_the_run_id_by_content(offline):
    _published_timm_file(offline / "weights", seed=0)
    cfg = resolve_config(RunConfig(pretrained=SPEC))
    assert cfg.backbone == "test_resnet"
    first = cfg.identity()["pretrained"]
    assert first.startswith(SPEC + "@")
    _published_timm_file(offline / "weights", seed=1)  # a re-release under the same tag
    weights_sha1.cache_clear()
    assert cfg.identity()["pretrained"] != first
    with pytest.raises(FerBenchError, match="holds weights for 'test_resnet', not for --backbone"):
        resolve_config(RunConfig(pretrained=SPEC, backbone="resnet18"))


def test_timm_spec_without_network_names_the_file_to_fetch(offline, capsys, tmp_path):
    args = ["run", "--pretrained", SPEC, "--output-dir", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "fetch them from timm/test_resnet.r160_in1k" in err[0]
    assert str(offline / "weights" / "test_resnet.r160_in1k.safetensors") in err[0]
    assert not list((tmp_path / "runs").rglob("record.json"))


def _published_facenet_file():
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    state = InceptionResnetV1(classify=True, num_classes=8631).state_dict()
    path = facenet_weights_file("facenet_vggface2")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_facenet_backbone_loads_facenets_weights_through_its_own_loader(offline):
    state = _published_facenet_file()
    model, features = create_backbone("facenet_vggface2")
    assert isinstance(model, FaceNetBackbone) and features == 512
    got = model.state_dict()["net.conv2d_1a.conv.weight"]
    assert torch.equal(got, state["conv2d_1a.conv.weight"])
    model.eval()
    assert model(torch.zeros(2, 3, 96, 96)).shape == (2, 512)
    ident = resolve_config(RunConfig(backbone="facenet_vggface2", image_size=96)).identity()
    assert ident["pretrained"].startswith("facenet_vggface2@")


def test_facenet_without_network_names_the_file_to_fetch(offline, monkeypatch):
    import facenet_pytorch.models.inception_resnet_v1 as irv1

    def no_network(url, dst, *args, **kwargs):
        raise OSError(f"<urlopen error [Errno -3] Temporary failure in name resolution> {url}")

    monkeypatch.setattr(irv1, "download_url_to_file", no_network)
    with pytest.raises(FerBenchError) as err:
        create_backbone("facenet_casia")
    message = str(err.value)
    assert "\n" not in message and str(facenet_weights_file("facenet_casia")) in message
