import keras
import pytest

from mura_thesis import architecture_tables


@pytest.fixture(scope="module")
def tiny():
    """A model named like keras.applications': an input, two blocks, a pooled head; block1 frozen."""
    inputs = keras.Input((8, 8, 1), name="input_layer")
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv1")(inputs)  # 3*3*1*4 + 4 = 40 parameters
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="block2_conv1")(x)  # 3*3*4*8 + 8 = 296 parameters
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, x)
    model.get_layer("block1_conv1").trainable = False
    return model


def test_stage_table_groups_layers_by_stage(tiny):
    table = architecture_tables.stage_table(tiny)
    assert table.index.name == "stage"
    assert list(table.index) == ["input", "block1", "block2", "head"]
    assert table["layers"].tolist() == [1, 2, 1, 1]
    assert table["parameters"].tolist() == [0, 40, 296, 0]
    assert table["output shape"].tolist() == ["8 x 8 x 1", "4 x 4 x 4", "4 x 4 x 8", "8"]
    assert table["parameters"].sum() == tiny.count_params()


def test_summary_table_names_and_sizes(tiny):
    table = architecture_tables.summary_table({"vgg16": tiny, "unnamed": tiny})
    assert list(table.index) == ["VGG16", "unnamed"]
    assert table.loc["VGG16"].to_dict() == {
        "layers": 5,
        "parameters": 336,
        "trainable parameters": 296,
        "output features": 8,
    }


def test_layer_type_table_counts_layer_classes(tiny):
    inputs = keras.Input((4,), name="input_layer")
    dense = keras.Model(inputs, keras.layers.Dense(1, name="top")(inputs))
    table = architecture_tables.layer_type_table({"resnet50": tiny, "vgg16": dense})
    assert table["VGG16"].to_dict() == {
        "Conv2D": 0,
        "Dense": 1,
        "GlobalAveragePooling2D": 0,
        "InputLayer": 1,
        "MaxPooling2D": 0,
    }
    assert table.index.name == "layer type" and list(table.index) == sorted(table.index)
    assert table["ResNet-50"].to_dict() == {
        "Conv2D": 2,
        "GlobalAveragePooling2D": 1,
        "Dense": 0,
        "InputLayer": 1,
        "MaxPooling2D": 1,
    }


def test_layer_table_lists_every_layer(tiny):
    table = architecture_tables.layer_table(tiny)
    assert list(table.index) == [layer.name for layer in tiny.layers]
    assert table.loc["block2_conv1"].to_dict() == {"type": "Conv2D", "output shape": "4 x 4 x 8", "parameters": 296}
