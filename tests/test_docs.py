"""Documentation checks (issue 13 §4).

(a) every public callable of the public modules has a docstring; functions and classes that take
    arguments have a numpydoc "Parameters" section (cs231n's "Inputs:" in fastnn.compat.cs231n,
    which keeps the course's style); public methods have a docstring (inherited counts);
(b) the README's ```python blocks run, in order, in one namespace;
(c) the Examples sections of the docstrings run (doctest).

(b) and (c) run in a subprocess from the tests directory, so what they set (threads, backends)
does not leak into other tests.
"""
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"

PUBLIC_MODULES = [
    "fastnn", "fastnn.nn", "fastnn.optim", "fastnn.init", "fastnn.preprocess", "fastnn.gradcheck",
    "fastnn.diagnostics", "fastnn.train", "fastnn.compat.cs231n", "fastnn.torch", "fastnn.distributed",
    "fastnn.tune", "fastnn.warmup",
]
NEEDS = {"fastnn.torch": "torch", "fastnn.distributed": "mpi4py"}  # optional extras


def _import(name):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    return importlib.import_module(name)


def public_callables(module):
    """{name: object}: the callables named in the module's `__all__`, and its other public names bound
    to functions or classes of fastnn (defined in the module itself when it has an `__all__`; for the
    top level, in any fastnn module: not re-exports of other libraries)."""
    listed = set(getattr(module, "__all__", ()))
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or not callable(obj) or inspect.ismodule(obj):
            continue
        owner = getattr(obj, "__module__", None) or ""
        defined_here = owner == module.__name__ if hasattr(module, "__all__") else owner.startswith("fastnn")
        if name in listed or defined_here:
            found[name] = obj
    return found


def _takes_arguments(obj):
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    if inspect.isclass(obj) and not getattr(obj.__init__, "__module__", "").startswith("fastnn") and all(
            p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return False  # another library's catch-all constructor (torch.nn.Module's *args, **kwargs)
    return bool(parameters)


def _has_parameters_section(doc, cs231n):
    if cs231n:
        return re.search(r"^\s*Inputs:", doc, re.M) is not None
    return re.search(r"^\s*Parameters\n\s*-{3,}\s*$", doc, re.M) is not None


def _own_public_methods(cls):
    """Public methods and properties that fastnn defines on `cls` (or its fastnn bases): a torch
    subclass's inherited torch methods are torch's business."""
    methods = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("fastnn"):
            continue
        attr = vars(owner)[name]
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr) or isinstance(attr, property):
            methods[name] = getattr(cls, name)
    return methods


def _problems(module_name):
    module = _import(module_name)
    cs231n = module_name == "fastnn.compat.cs231n"
    problems = []
    for name, obj in sorted(public_callables(module).items()):
        qualified = f"{module_name}.{name}"
        doc = inspect.getdoc(obj)
        if not doc:
            problems.append(f"{qualified}: no docstring")
            continue
        if _takes_arguments(obj):
            docs = doc + "\n" + (inspect.getdoc(obj.__init__) or "" if inspect.isclass(obj) else "")
            if not _has_parameters_section(docs, cs231n):
                problems.append(f"{qualified}: no {'Inputs:' if cs231n else 'Parameters'} section")
        if inspect.isclass(obj):
            for method_name, method in sorted(_own_public_methods(obj).items()):
                if not inspect.getdoc(method):
                    problems.append(f"{qualified}.{method_name}: no docstring")
    return problems


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_callables_are_documented(module_name):
    problems = _problems(module_name)
    assert not problems, "\n".join(problems)


def _run(code, timeout=600):
    """Run `code` in a fresh interpreter from the tests directory; fail with its output."""
    result = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def readme_blocks():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def test_readme_python_blocks_run():
    pytest.importorskip("torch")
    pytest.importorskip("mpi4py")
    blocks = readme_blocks()
    assert len(blocks) >= 4
    script = "".join(f"# --- README block {i}\n{block}\n" for i, block in enumerate(blocks))
    _run(script)


DOCTEST_DRIVER = textwrap.dedent("""
    import doctest, importlib, inspect, sys
    import numpy as np

    names = sys.argv[1:]
    modules = {}
    for name in names:
        module = importlib.import_module(name)
        modules[name] = module
        public = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
        for n in public:  # the modules that define the public callables (activations, _ops, ...)
            owner = getattr(getattr(module, n, None), "__module__", None) or ""
            if owner.startswith("fastnn") and owner not in modules:
                modules[owner] = importlib.import_module(owner)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    examples = 0
    for name, module in sorted(modules.items()):
        for test in finder.find(module, name, extraglobs={"np": np}):
            examples += len(test.examples)
            runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    print(f"{attempted} examples, {failed} failed")
    sys.exit(1 if failed or not examples else 0)
""")


def test_docstring_examples_run():
    names = [m for m in PUBLIC_MODULES if m not in NEEDS or importlib.util.find_spec(NEEDS[m])]
    _run(DOCTEST_DRIVER.replace("sys.argv[1:]", repr(names)))
