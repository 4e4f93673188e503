"""The dashboards and the rules read one set of selectors, objectives and burn-rate lines
(prometheus/stormproof_selectors.py): the rules are held to it, and a rule that drifts is
named."""
import pathlib
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "prometheus"))
import stormproof_selectors as shared  # noqa: E402

RECORDING = (ROOT / "prometheus" / "rules" / "recording.yml").read_text()
ALERTS = (ROOT / "prometheus" / "rules" / "alerts.yml").read_text()


class SharedValues(unittest.TestCase):
    def test_the_rules_use_the_shared_values(self):
        self.assertEqual(shared.problems(), [])

    def test_a_rule_that_drifts_is_named(self):
        slower = RECORDING.replace('le="0.3"', 'le="0.25"')
        self.assertTrue(any("le=" in p for p in shared.problems(recording=slower)))
        looser = RECORDING.replace("vector(0.999)", "vector(0.99)")
        self.assertTrue(any("order_availability:objective" in p
                            for p in shared.problems(recording=looser)))
        paged = ALERTS.replace("> 14.4", "> 10")
        self.assertTrue(any("burn rates" in p for p in shared.problems(alerts=paged)))


if __name__ == "__main__":
    unittest.main()
