"""Layers and the model: config round trip, shapes, weights, causality, persistence."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf import layers
from grok_tf import model as model_lib
from conftest import load_config

BATCH, SEQ, WIDTH = 3, 6, 16

LAYER_CASES = [
    # (layer, input, expected output shape, expected number of weights)
    (lambda: layers.TokenAndPositionEmbedding(11, WIDTH, SEQ),
     lambda: np.random.default_rng(0).integers(0, 11, (BATCH, SEQ)), (BATCH, SEQ, WIDTH), 11 * 16),
    (lambda: layers.CausalSelfAttention(4, WIDTH),
     lambda: np.random.default_rng(0).normal(size=(BATCH, SEQ, WIDTH)).astype("float32"),
     (BATCH, SEQ, WIDTH), 4 * WIDTH * WIDTH),
    (lambda: layers.FeedForward(WIDTH, 64, "gelu"),
     lambda: np.random.default_rng(0).normal(size=(BATCH, SEQ, WIDTH)).astype("float32"),
     (BATCH, SEQ, WIDTH), 2 * WIDTH * 64),
    (lambda: layers.DecoderBlock(WIDTH, 4, 64, "relu", 0.1),
     lambda: np.random.default_rng(0).normal(size=(BATCH, SEQ, WIDTH)).astype("float32"),
     (BATCH, SEQ, WIDTH), 4 * WIDTH * WIDTH + 2 * WIDTH * 64 + 4 * WIDTH),
]


@pytest.mark.parametrize("make_layer,make_input,shape,num_weights", LAYER_CASES)
def test_layer_contract(make_layer, make_input, shape, num_weights, tmp_path):
  layer = make_layer()
  inputs = make_input()
  outputs = layer(inputs)
  assert tuple(outputs.shape) == shape
  assert sum(int(np.prod(w.shape)) for w in layer.weights) == num_weights
  # Config round trip: same config, and the same outputs once weights are copied.
  clone = layer.__class__.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  clone(inputs)
  clone.set_weights(layer.get_weights())
  np.testing.assert_allclose(clone(inputs), outputs, rtol=1e-6)


def _tiny_model(**overrides):
  config = load_config("default", "smoke").model
  for key, value in overrides.items():
    config[key] = value
  return model_lib.build_model(config, vocabulary_size=26)


def test_paper_model_has_393216_non_embedding_parameters():
  paper = model_lib.build_model(load_config("default").model, vocabulary_size=100)
  assert model_lib.non_embedding_parameter_count(paper) == 393_216
  assert len(paper.blocks) == 2 and paper.blocks[0].attention.num_heads == 4


def test_model_is_causal():
  model = _tiny_model(num_layers=2)
  tokens = np.random.default_rng(1).integers(0, 26, (4, 6))
  changed = tokens.copy()
  changed[:, 4] = (changed[:, 4] + 1) % 26
  before, after = model(tokens).numpy(), model(changed).numpy()
  np.testing.assert_array_equal(before[:, :4], after[:, :4])
  assert not np.allclose(before[:, 4:], after[:, 4:])


def test_answer_logits_equal_full_logits_at_answer_positions():
  model = _tiny_model()
  tokens = np.random.default_rng(2).integers(0, 26, (8, 6))
  np.testing.assert_allclose(model.answer_logits(tokens), model(tokens)[:, 4:6], rtol=1e-6,
                             atol=1e-6)


def test_mixed_bfloat16_computes_in_bfloat16_and_returns_float32_logits():
  config = load_config("default", "smoke").model
  model = model_lib.build_model(config, 26, "mixed_bfloat16")
  assert model.embedding.embeddings.dtype == "float32"
  assert model.blocks[0].compute_dtype == "bfloat16"
  assert model(np.zeros((2, 6), np.int32)).dtype == tf.float32


def test_keras_file_round_trip(tmp_path):
  model = _tiny_model(dropout_rate=0.1)
  tokens = np.random.default_rng(3).integers(0, 26, (5, 6))
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert isinstance(loaded, model_lib.Transformer)
  np.testing.assert_allclose(loaded(tokens), model(tokens), rtol=1e-6)
