"""Selection utilities: tournament, elitism, NSGA-II Pareto ranking."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from genesys_dsl.gp.selection import (
    crowding_distance, deduplicate, dominates, elite, nsga2_select, pareto_fronts, pareto_rank, tournament,
)


def test_tournament_is_seeded_and_picks_the_fittest_contestant():
    items = list(range(20))
    picks = [tournament(items, lambda x: x, random.Random(7), size=4) for _ in range(3)]
    assert picks == [tournament(items, lambda x: x, random.Random(7), size=4) for _ in range(3)]
    rng = random.Random(1)
    assert tournament(items, lambda x: x, rng, size=len(items)) == 19


def test_elite_keeps_the_best_in_order():
    assert elite(["a", "bbb", "cc", "dddd"], len, 2) == ["dddd", "bbb"]


def test_dominance_respects_direction():
    # (accuracy up, parameters down)
    assert dominates((0.9, 100), (0.8, 200), minimize=[False, True])
    assert not dominates((0.9, 300), (0.8, 200), minimize=[False, True])
    assert not dominates((0.9, 100), (0.9, 100), minimize=[False, True])


def test_fronts_of_a_known_set():
    points = [(1, 5), (2, 4), (3, 3), (2, 2), (1, 1), (3, 5)]
    assert pareto_fronts(points) == [[5], [0, 1, 2], [3], [4]]
    assert pareto_rank(points) == [1, 1, 1, 2, 3, 0]


def test_crowding_keeps_the_extremes():
    points = [(0, 10), (1, 9), (2, 8), (10, 0)]
    front = [0, 1, 2, 3]
    crowd = crowding_distance(points, front)
    assert crowd[0] == crowd[3] == float("inf") and crowd[1] < crowd[2]
    assert set(nsga2_select(points, 3)) == {0, 2, 3}


def test_deduplicate_keeps_first():
    assert deduplicate(["a", "b", "A", "c"], str.lower) == ["a", "b", "c"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=30), st.data())
def test_nsga2_properties(points, data):
    count = data.draw(st.integers(1, len(points)))
    fronts = pareto_fronts(points)
    assert sorted(i for f in fronts for i in f) == list(range(len(points)))  # a partition
    for f in fronts[1:]:  # every later point is dominated by some earlier-front point
        for j in f:
            assert any(dominates(points[i], points[j]) for front in fronts[: fronts.index(f)] for i in front)
    chosen = nsga2_select(points, count)
    assert len(chosen) == count == len(set(chosen))
    # a chosen point is never dominated by one left out of a better front
    for i in chosen:
        assert not any(dominates(points[j], points[i]) and j not in chosen and pareto_rank(points)[j] <
                       pareto_rank(points)[i] for j in range(len(points)))
