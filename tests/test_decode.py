"""The decoders by hand, their names, and the errors for the names they used to have."""
import numpy as np
import pytest

import minisnn as ms
from minisnn import decode


def example():
    spk = np.zeros((5, 2, 3))
    spk[[0, 1, 2], 0, 2] = 1     # sample 0: class 2 fires 3 times, from step 0
    spk[[3, 4], 0, 1] = 1        #           class 1 fires twice, later
    spk[[1], 1, 0] = 1           # sample 1: class 0 once, at step 1
    spk[[2, 3, 4], 1, 1] = 1     #           class 1 three times, from step 2
    return spk


def test_rate_and_latency_predictions():
    spk = example()
    np.testing.assert_array_equal(ms.predict_rate(spk), [2, 1])
    np.testing.assert_array_equal(ms.predict_latency(spk), [2, 0])
    np.testing.assert_array_equal(ms.first_spike_time(spk), [[5, 3, 0], [1, 2, 5]])  # silent: T
    assert ms.accuracy(ms.predict_rate(spk), np.array([2, 0])) == 0.5


def test_ties_go_to_the_lowest_index():
    spk = np.zeros((4, 1, 3))
    spk[2, 0, [1, 2]] = 1
    assert ms.predict_rate(spk).tolist() == [1] and ms.predict_latency(spk).tolist() == [1]
    assert ms.predict_rate(np.zeros((4, 1, 3))).tolist() == [0]


def test_silent_neuron_is_T_here_and_T_minus_1_with_the_snntorch_recipe():
    spk = np.zeros((4, 1, 3))
    spk[3, 0, 2] = 1                            # only class 2 fires, at the last step
    assert ms.predict_latency(spk).tolist() == [2]
    T = spk.shape[0]
    snntorch_like = np.minimum(ms.first_spike_time(spk), T - 1).argmin(axis=1)
    assert snntorch_like.tolist() == [0]        # silent class 0 ties at T − 1 and wins


@pytest.mark.parametrize("module, name, new", [(ms, "rate", "predict_rate"),
                                               (ms, "latency", "predict_latency"),
                                               (decode, "rate", "predict_rate"),
                                               (decode, "latency", "predict_latency")])
def test_old_decoder_names_raise_naming_the_decoder_and_the_encoder(module, name, new):
    with pytest.raises(AttributeError) as info:
        getattr(module, name)
    message = str(info.value)
    assert f"minisnn.{new}(spk_rec)" in message and f"minisnn.spikegen.{name}" in message
    assert not hasattr(module, name)


def test_other_missing_names_are_plain_attribute_errors():
    with pytest.raises(AttributeError, match="module 'minisnn' has no attribute 'ratee'$"):
        ms.ratee


def test_decoders_check_their_input():
    with pytest.raises(ValueError, match=r"spk_rec must have shape \(T, B, C\)"):
        ms.predict_rate(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="pred and y must have the same shape"):
        ms.accuracy(np.zeros(3), np.zeros(4))
