"""Readable one-line descriptions of predicted CATAMI paths: hand-written expectations per head."""

import pytest

from benthic.hierarchy.catami import load_hierarchies
from benthic.hierarchy.describe import bedforms_phrase, biota_phrase, describe, relief_phrase, substrate_phrase


def test_the_issue_example():
    pred = {
        "substrate": (("Substrate", "Consolidated (hard)", "Rock"), 0.912),
        "biota": (("Biota", "Sponges", "Encrusting"), 0.744),
        "relief": (("Flat",), 0.66),
        "bedforms": (("None",), 0.8),
    }
    assert describe(pred) == (
        "Hard substrate (rock, 0.91) with sponges (encrusting, 0.74); flat relief (0.66); no bedforms visible (0.80)"
    )


@pytest.mark.parametrize(
    "fn, path, prob, text",
    [
        (
            substrate_phrase,
            ("Substrate", "Unconsolidated (soft)", "Pebble / gravel", "Biologenic", "Coral rubble"),
            0.8,
            "Soft substrate (coral rubble, 0.80)",
        ),
        (substrate_phrase, ("Substrate", "Consolidated (hard)"), 0.7, "Hard substrate (0.70)"),
        (substrate_phrase, ("Substrate",), 0.6, "Substrate of unclear type (0.60)"),
        (substrate_phrase, ("Anthropogenic", "Tile"), 0.55, "Man-made substrate (tile, 0.55)"),
        (substrate_phrase, (), 0.9, "Substrate not recognised"),
        (biota_phrase, ("Biota", "Cnidaria", "Corals"), 0.805, "cnidaria (corals, 0.81)"),
        (biota_phrase, ("Biota", "Sponges"), 0.7, "sponges (0.70)"),
        (biota_phrase, ("No visible biota",), 0.9, "no visible biota (0.90)"),
        (biota_phrase, (), 0.9, "no biota recognised"),
        (relief_phrase, ("Low / moderate", "Low (<1m)"), 0.5, "low / moderate relief (low (<1m), 0.50)"),
        (
            bedforms_phrase,
            ("Bedforms", "2D", "Ripples (<10cm height)"),
            0.61,
            "bedforms (2D, ripples (<10cm height), 0.61)",
        ),
        (bedforms_phrase, (), 0.9, "bedforms not recognised"),
    ],
)
def test_phrases(fn, path, prob, text):
    assert fn(path, prob) == text


def test_partial_heads_and_capitalisation():
    assert describe({"biota": (("Biota", "Fishes"), 0.9)}) == "Fishes (0.90)"
    assert describe({"bedforms": (("None",), 0.7)}) == "No bedforms visible (0.70)"
    assert describe({}) == ""
    assert describe({"qualifiers": (("Bleached",), 0.6)}) == "Qualifiers: Bleached (0.60)"


def test_every_node_of_every_head_gets_a_phrase():
    for head, hier in load_hierarchies().items():
        for node in hier.nodes:
            text = describe({head: (node, 0.75)})
            assert text and "0.75" in text, (head, node)
