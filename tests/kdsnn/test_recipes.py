"""Recipes: every shipped file is valid and complete, each data set has one, resolution fills only
what is unset (recipe < arch table < kd table < given options), and bad recipe files are refused
in one line naming what is wrong."""
import tomllib

import pytest

from kdsnn import augment, data, recipes
from kdsnn.distill import METHODS
from kdsnn.errors import KdsnnError
from kdsnn.trainer import TrainConfig
from tests.helpers import REPO

SHIPPED = recipes.builtin_names()


def test_one_recipe_per_family_and_data_set():
    assert SHIPPED == ["cifar-student", "cifar-teacher", "default-student", "default-teacher", "digits-student",
                       "digits-teacher", "mnist-student", "mnist-teacher"]
    for family in recipes.FAMILIES:
        for dataset in ("digits", "mnist", "cifar10", "cifar100"):
            claimed = [n for n in SHIPPED
                       if recipes.builtin(n).family == family and dataset in recipes.builtin(n).datasets]
            assert len(claimed) == 1 and recipes.for_dataset(family, dataset).name == claimed[0]
        assert recipes.for_dataset(family, "fake:3x32x32:10").name == f"default-{family}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_is_valid_complete_and_sourced(name):
    r = recipes.builtin(name)
    assert r.origin == "built-in" and name.endswith(r.family) and len(r.source) > 40
    expected = set(recipes.OPTIONS) | (set(recipes.STUDENT_OPTIONS) if r.family == "student" else set())
    assert set(r.options) == expected  # every shipped recipe states every option it governs
    if r.family == "student":
        assert set(r.kd) == {m for m, cls in METHODS.items() if cls.needs_teacher}  # a weight for every KD method
        assert all("alpha" in table for table in r.kd.values())
    for dataset in r.datasets:
        ds = data.spec(dataset)
        augment.build(r.options["augment"], ds.input_shape[1:], flippable=dataset not in ("digits", "mnist"))
    # the file decodes to exactly what was parsed (nothing dropped on the way)
    raw = tomllib.loads((REPO / "kdsnn" / "recipes" / f"{name}.toml").read_text())
    assert {k.replace("-", "_") for k in raw["options"]} == set(r.options)


def test_recipes_ship_as_package_data():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert "kdsnn.recipes" in setuptools["packages"]
    assert setuptools["package-data"]["kdsnn.recipes"] == ["*.toml"]


def test_apply_fills_only_unset_options_from_the_data_sets_recipe():
    cfg, recipe = recipes.apply(TrainConfig(dataset="mnist", arch="snn_2conv", kd="feature", lr=0.123), "student")
    values = recipes.builtin("mnist-student").values("snn_2conv", "feature")
    assert recipe.name == "mnist-student"
    assert cfg.lr == 0.123  # given: kept
    assert (cfg.epochs, cfg.batch_size, cfg.augment, cfg.timesteps) == \
        (values["epochs"], values["batch_size"], values["augment"], values["timesteps"])
    assert cfg.alpha == recipe.kd["feature"]["alpha"]  # the method's own table
    teacher, t_recipe = recipes.apply(TrainConfig(dataset="cifar10", arch="resnet18"), "teacher")
    assert t_recipe.name == "cifar-teacher" and teacher.augment == "crop-flip:pad=4" and teacher.timesteps is None


def _write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_users_partial_recipe_sits_on_the_built_in_defaults(tmp_path):
    path = _write(tmp_path, 'family = "student"\nsource = "my sweep"\n[options]\nlr = 0.2\nepochs = 3\n'
                            '[arch.snn_vgg11]\nlr = 0.01\n[kd.response]\nalpha = 0.5\ntemperature = 2\n')
    default = recipes.builtin("default-student").options
    cfg, r = recipes.apply(TrainConfig(dataset="digits", arch="snn_2conv", recipe=path), "student")
    assert r.name == "mine" and r.origin == str(tmp_path / "mine.toml")
    assert (cfg.lr, cfg.epochs, cfg.alpha, cfg.temperature) == (0.2, 3, 0.5, 2.0)
    assert cfg.batch_size == default["batch_size"] and cfg.augment == default["augment"]  # not the digits recipe's
    vgg, _ = recipes.apply(TrainConfig(dataset="digits", arch="snn_vgg11", recipe=path, kd="none"), "student")
    assert vgg.lr == 0.01 and vgg.temperature == default["temperature"]  # the arch table wins over [options]


@pytest.mark.parametrize("text, message", [
    ('family = "student"\nsource = "x"\n[options]\nepochs = "ten"\n', "epochs must be a int"),
    ('family = "student"\nsource = "x"\n[options]\nnesterov = 1\n', "nesterov must be a bool"),
    ('family = "student"\nsource = "x"\n[options]\nlr = -0.1\n', "lr must be > 0"),
    ('family = "student"\nsource = "x"\n[options]\nlearning-rate = 0.1\n', "'learning-rate' is not an option"),
    ('family = "student"\nsource = "x"\n[options]\naugment = "mixup"\n', "unknown augmentation 'mixup'"),
    ('family = "student"\nsource = "x"\n[options]\nschedule = "linear"\n', "unknown schedule 'linear'"),
    ('family = "student"\nsource = "x"\n[kd.hinton]\nalpha = 1\n', r"\[kd.hinton\] names no distillation method"),
    ('family = "teacher"\nsource = "x"\n[options]\ntimesteps = 4\n', "'timesteps' is not an option"),
    ('family = "teacher"\nsource = "x"\n[kd.response]\nalpha = 1\n', "belong in student recipes"),
    ('family = "student"\n[options]\nlr = 0.1\n', "source must say where"),
    ('family = "ann"\nsource = "x"\n', "family must be one of teacher, student"),
    ('family = "student"\nsource = "x"\nepochs = 3\n', "unknown key 'epochs'"),
    ('family = "student"\nsource = "x"\n[options\n', "not valid TOML"),
])
def test_bad_recipe_files_are_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(KdsnnError, match=message) as err:
        recipes.load(_write(tmp_path, text), "student" if '"teacher"' not in text else "teacher", "digits")
    assert "\n" not in str(err.value) and "mine.toml" in str(err.value)


def test_bad_recipe_names_are_refused(tmp_path):
    with pytest.raises(KdsnnError, match="unknown recipe 'mnist'; choose one of cifar-student, .*mnist-student"):
        recipes.load("mnist", "student", "mnist")
    with pytest.raises(KdsnnError, match="recipe file .*absent.toml does not exist"):
        recipes.load(str(tmp_path / "absent.toml"), "student", "mnist")
    with pytest.raises(KdsnnError, match="recipe mnist-teacher is a teacher recipe .*train-teacher.*pick a student"):
        recipes.load("mnist-teacher", "student", "mnist")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KdsnnError, match="could not be read"):
        recipes.load(str(binary), "student", "mnist")


def test_a_recipe_warm_up_longer_than_a_shortened_run_is_dropped_but_a_given_one_is_checked():
    warm = recipes.builtin("mnist-student").values("snn_2conv", "none")["warmup_epochs"]
    assert warm == 1  # the MNIST recipe warms up for one epoch
    cfg, _ = recipes.apply(TrainConfig(dataset="mnist", arch="snn_2conv", kd="none", epochs=1), "student")
    assert cfg.warmup_epochs == 0.0  # --epochs 1 leaves no room for it: the run starts at the peak lr
    cfg, _ = recipes.apply(TrainConfig(dataset="mnist", arch="snn_2conv", kd="none", epochs=3), "student")
    assert cfg.warmup_epochs == warm
    given, _ = recipes.apply(TrainConfig(dataset="mnist", arch="snn_2conv", kd="none", epochs=1, warmup_epochs=2),
                             "student")
    assert given.warmup_epochs == 2  # the user's own value is kept (and refused by optim.check)
