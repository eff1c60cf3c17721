"""Every public function of convforge.functional, convforge.nn and convforge.models documents, numpy-style,
its parameters, what it returns and what it raises."""
import inspect
import re

import pytest

import convforge.functional as F
import convforge.models as M
import convforge.nn as N


def _public_functions():
    for mod in (F, N, M):
        names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and obj.__module__.startswith("convforge"):
                yield f"{mod.__name__}.{name}", obj


FUNCTIONS = dict(_public_functions())


def test_the_public_functions_are_found():
    assert {"convforge.functional.conv2d", "convforge.functional.algos", "convforge.nn.load_checkpoint",
            "convforge.nn.manual_seed", "convforge.models.lenet5", "convforge.models.build"} <= set(FUNCTIONS)
    assert len(FUNCTIONS) >= 30


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_numpy_style_sections(name):
    doc = inspect.getdoc(FUNCTIONS[name]) or ""
    for section in ("Parameters", "Returns", "Raises"):
        assert re.search(rf"^{section}\n-{{{len(section)}}}$", doc, re.M), f"{name}: no {section} section"
    summary = doc.splitlines()[0] if doc else ""
    assert len(summary) > 10, f"{name}: no one-line summary"


def test_conv2d_documents_shapes_rule_forms_and_algos():
    doc = inspect.getdoc(F.conv2d)
    for needle in ("(N, C, H, W)", "(K, C/groups, R, S)", "(N, K, P, Q)", '"same"', '"valid"', "algos(",
                   "torch.nn.functional.conv2d", "floor("):
        assert needle in doc, needle
