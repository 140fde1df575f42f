import math
import pickle

import pytest

from napari_nuclei_counter import BBBC021_PRESET, DetectionParams


def test_defaults_are_the_bbbc021_values():
    p = DetectionParams()
    assert (p.sigma, p.min_distance, p.threshold_abs) == (4.0, 6, 1000.0)
    assert p == BBBC021_PRESET


def test_frozen_and_picklable_and_hashable():
    p = DetectionParams(2.5, 3, 12.0)
    with pytest.raises(AttributeError):
        p.sigma = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(p)) == p
    assert hash(p) == hash(DetectionParams(2.5, 3.0, 12))


def test_json_round_trip_and_types_normalised():
    p = DetectionParams(sigma=3, min_distance=5.0, threshold_abs=7)
    assert isinstance(p.sigma, float) and isinstance(p.min_distance, int)
    assert DetectionParams.from_json(p.to_json()) == p
    assert p.to_dict() == {"sigma": 3.0, "min_distance": 5, "threshold_abs": 7.0}
    assert len(p.digest()) == 16 and p.digest() != DetectionParams().digest()


def test_digest_follows_the_values_not_their_types():
    """Resume keys: equal parameters share a digest, any one changed value changes it."""
    base = DetectionParams(3.0, 5, 7.0)
    assert DetectionParams(3, 5.0, 7).digest() == base.digest()
    assert pickle.loads(pickle.dumps(base)).digest() == base.digest()
    changed = [DetectionParams(3.5, 5, 7.0), DetectionParams(3.0, 6, 7.0),
               DetectionParams(3.0, 5, 7.5)]
    digests = {base.digest(), *(c.digest() for c in changed)}
    assert len(digests) == 4
    assert all(len(d) == 16 and int(d, 16) >= 0 for d in digests)  # hexadecimal


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sigma": 0}, "sigma"),
        ({"sigma": -1}, "sigma"),
        ({"sigma": math.nan}, "sigma"),
        ({"sigma": math.inf}, "sigma"),
        ({"min_distance": 0}, "min_distance"),
        ({"min_distance": 2.5}, "min_distance"),
        ({"threshold_abs": math.nan}, "threshold_abs"),
        ({"threshold_abs": -math.inf}, "threshold_abs"),
    ],
)
def test_invalid_values_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DetectionParams(**kwargs)


@pytest.mark.parametrize("kwargs", [{"sigma": "4"}, {"min_distance": "6"}, {"threshold_abs": None},
                                    {"min_distance": True}])
def test_wrong_types_raise_type_error(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        DetectionParams(**kwargs)


def test_unknown_json_key_is_rejected():
    with pytest.raises(ValueError, match="unknown parameter"):
        DetectionParams.from_json('{"sigma": 4, "radius": 3}')
