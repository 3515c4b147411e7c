"""Model registry, the VGG teacher and the CNN student: shapes, parameter counts, configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asc_auto.errors import AscError
from asc_auto.models.cnn import CnnStudent, Projection, StudentConfig
from asc_auto.models.registry import MODELS, available_models, create_model, register_model
from asc_auto.models.vgg import VggConfig, VggTeacher

DEMO_TEACHER = (16, 16, 32, 32, 64, 64, 64, 64, 128, 128, 128, 128)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_holds_the_kd_models() -> None:
    assert {"vgg_teacher", "cnn_student"} <= set(available_models())
    assert available_models() == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_is_its_own_module_class(name: str) -> None:
    # NNCF cannot quantize a bare nn.Sequential top model.
    model = create_model(name)
    assert isinstance(model, nn.Module)
    assert not isinstance(model, nn.Sequential)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vgg_teacher", {"channels": DEMO_TEACHER}),
        ("cnn_student", {"channels": (8, 16, 24)}),
        ("cnn_student", {"channels": (8, 16, 24), "kernel_size": 5, "n_classes": 10}),
        ("vgg_teacher", {"channels": (8, 8, 16), "pool_after": (0, 2), "in_channels": 3}),
    ],
)
def test_forward_returns_logits_and_embedding(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    in_ch = kwargs.get("in_channels", 1)
    logits, embedding = model(torch.randn(2, in_ch, 64, 50))
    assert logits.shape == (2, kwargs.get("n_classes", 3))
    assert embedding.shape == (2, kwargs["channels"][-1])
    assert model.embed_dim == kwargs["channels"][-1]
    assert torch.isfinite(logits).all()


def test_student_default_matches_paper_parameter_count() -> None:
    student = create_model("cnn_student")
    assert isinstance(student, CnnStudent)
    assert student.config == StudentConfig(channels=(32, 51, 512), kernel_size=3)
    assert n_params(student) == 252_713  # seed paper: 252,713 trainable parameters
    assert student.embed_dim == 512  # same as the teacher: no projection needed


def test_teacher_default_shape_and_parameter_count() -> None:
    teacher = create_model("vgg_teacher")
    assert isinstance(teacher, VggTeacher)
    convs = [m for m in teacher.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 12
    assert (convs[0].out_channels, convs[-1].out_channels) == (64, 512)
    # conv3x3 without bias + BN + Linear(512, 3); the paper's Vgg12 reports 12,621,635.
    assert n_params(teacher) == 10_588_995
    assert sum(isinstance(m, nn.MaxPool2d) for m in teacher.modules()) == 4


def test_small_demo_teacher_by_channels_or_width() -> None:
    by_channels = create_model("vgg_teacher", channels=list(DEMO_TEACHER))  # lists from TOML
    by_width = create_model("vgg_teacher", config=VggConfig().scaled(0.25))
    assert by_channels.config.channels == DEMO_TEACHER
    assert by_width.config.channels == DEMO_TEACHER
    assert n_params(by_channels) == n_params(by_width) == 663_507


def test_unknown_model_lists_known_models() -> None:
    with pytest.raises(AscError, match=r"unknown model 'resnet'.*cnn_student.*vgg_teacher"):
        create_model("resnet")


def test_unknown_config_key_is_an_error() -> None:
    with pytest.raises(AscError, match=r"unknown config key\(s\) width.*valid keys: channels"):
        create_model("cnn_student", width=2)


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="kernel_size"):
        StudentConfig(kernel_size=4)
    with pytest.raises(ValueError, match="3 positive"):
        StudentConfig(channels=(8, 16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool_after"):
        VggConfig(channels=(8, 8), pool_after=(2,))


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn_student")(lambda: nn.Linear(1, 1))


def test_projection_maps_to_teacher_dim_and_is_not_part_of_student() -> None:
    student = create_model("cnn_student", channels=(8, 16, 24)).eval()
    projection = Projection(student.embed_dim, 128)
    _, embedding = student(torch.randn(3, 1, 32, 32))
    assert projection(embedding).shape == (3, 128)
    student_tensors = {id(p) for p in student.parameters()}
    assert not student_tensors & {id(p) for p in projection.parameters()}
    assert n_params(projection) == 24 * 128 + 128


def test_global_pool_is_the_papers_average_or_a_max_with_the_same_parameters() -> None:
    avg, mx = CnnStudent(), CnnStudent(StudentConfig(pool="max"))
    assert isinstance(avg.pool, nn.AdaptiveAvgPool2d) and isinstance(mx.pool, nn.AdaptiveMaxPool2d)
    assert sum(p.numel() for p in mx.parameters()) == sum(p.numel() for p in avg.parameters())
    assert isinstance(VggTeacher(VggConfig(pool="max").scaled(0.125)).pool, nn.AdaptiveMaxPool2d)
    mx.load_state_dict(avg.state_dict())  # same tensors: a checkpoint moves between them
    x = torch.randn(2, 1, 64, 50)
    with torch.no_grad():
        emb_avg, emb_max = avg.eval()(x)[1], mx.eval()(x)[1]
        trunk = avg.features(x)
    assert torch.allclose(emb_avg, trunk.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(emb_max, trunk.amax(dim=(2, 3)), atol=1e-6)
    with pytest.raises(ValueError, match="pool must be one of avg, max"):
        StudentConfig(pool="median")


def test_kd_student_config_reads_the_searched_pool_and_defaults_to_the_papers() -> None:
    from asc_auto.techniques.kd import student_config

    config = {"c1": 8, "c2": 16, "c3": 32, "kernel_size": 3}
    assert student_config(config, 1, 4).pool == "avg"  # a space without the param
    assert student_config({**config, "pool": "max"}, 1, 4).pool == "max"
