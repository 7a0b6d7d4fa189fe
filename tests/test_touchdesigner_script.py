"""docs/touchdesigner/build_network.py runs only inside TouchDesigner; here: it compiles, and it
names only operators and parameters that TouchDesigner's documentation lists (sources below)."""

import ast
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "touchdesigner" / "build_network.py"
USER_GUIDE = "https://docs.derivative.ca/"

# Operator type -> (its documented parameters that the script may set, documentation page).
DOCUMENTED = {
    "ndiinTOP": ({"name", "active", "extraips"}, USER_GUIDE + "NDI_In_TOP"),
    "syphonspoutinTOP": ({"sendername"}, USER_GUIDE + "Syphon_Spout_In_TOP"),
    "cropTOP": ({"cropleft", "cropright", "cropbottom", "croptop"}, USER_GUIDE + "Crop_TOP"),
    "infoDAT": ({"op", "passive"}, USER_GUIDE + "Info_DAT"),
    "oscoutDAT": ({"address", "port", "protocol", "active"}, USER_GUIDE + "OSC_Out_DAT"),
    "parameterexecuteDAT": ({"op", "pars", "valuechange", "onpulse", "active"}, USER_GUIDE + "Parameter_Execute_DAT"),
    "baseCOMP": (set(), USER_GUIDE + "Base_COMP"),
}


def _tree():
    return ast.parse(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT))


def _created(tree):
    """(variable, operator type) of every `x = something.create(TYPE, name)`."""
    made = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "create" and isinstance(node.value.args[0], ast.Name)):
            made.append((node.targets[0].id, node.value.args[0].id))
    return made


def _parameters_set(tree):
    """(variable, parameter) of every `_set(variable, "parameter", value)`."""
    return [(node.args[0].id, node.args[1].value) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_set"]


def test_the_script_compiles_and_builds_each_part_the_docs_promise():
    compile(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT), "exec")
    types = {kind for _, kind in _created(_tree())}
    assert {"ndiinTOP", "syphonspoutinTOP", "cropTOP", "infoDAT", "oscoutDAT", "baseCOMP"} <= types


def test_only_documented_operators_and_parameters():
    tree = _tree()
    created = _created(tree)
    assert {kind for _, kind in created} <= set(DOCUMENTED), "operator type without a documentation entry"
    kinds = {}
    for variable, kind in created:
        kinds.setdefault(variable, set()).add(kind)
    for variable, parameter in _parameters_set(tree):
        allowed = set().union(*(DOCUMENTED[kind][0] for kind in kinds[variable]))
        assert parameter in allowed, f"{variable}.par.{parameter} is not a documented parameter of {kinds[variable]}"


def test_control_panel_sends_only_addresses_rdstream_understands():
    from stream.osc_control import OSC_PREFIX

    text = SCRIPT.read_text(encoding="utf-8")
    sent = {node.value for node in ast.walk(_tree()) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and node.value.startswith(OSC_PREFIX)}
    callbacks = ast.parse(next(n.value for n in ast.walk(_tree()) if isinstance(n, ast.Assign)
                               and getattr(n.targets[0], "id", "") == "CONTROL_CALLBACKS").value)
    sent |= {node.value for node in ast.walk(callbacks) if isinstance(node, ast.Constant)
             and isinstance(node.value, str) and node.value.startswith(OSC_PREFIX)}
    assert sent == {"/rdstream/pause", "/rdstream/stop", "/rdstream/normalize/running",
                    "/rdstream/normalize/fixed", "/rdstream/cmap"}, sent
    assert "exec(open(" in text  # the docstring says how to run it in the Textport


def test_each_message_the_panel_sends_is_accepted_by_rdstream():
    """Run the panel's callbacks with stand-ins for TouchDesigner's objects and hand every message
    they send to rdstream's own OSC parser."""
    from types import SimpleNamespace

    from stream.osc_control import parse_command

    sent = []
    osc_out = SimpleNamespace(sendOSC=lambda address, args: sent.append((address, list(args))))
    namespace = {"op": lambda name: osc_out}
    source = next(n.value.value for n in ast.walk(_tree()) if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "CONTROL_CALLBACKS")
    exec(compile(source, "CONTROL_CALLBACKS", "exec"), namespace)
    value = lambda v: SimpleNamespace(eval=lambda: v)  # noqa: E731
    panel = SimpleNamespace(par=SimpleNamespace(Near=value(2.0), Far=value(0.5), Cmap=value("turbo")))
    namespace["onValueChange"](SimpleNamespace(name="Pause", eval=lambda: True, owner=panel), False)
    for name in ("Stop", "Running", "Fixed", "Sendcmap"):
        namespace["onPulse"](SimpleNamespace(name=name, owner=panel))
    assert [address for address, _ in sent] == ["/rdstream/pause", "/rdstream/stop", "/rdstream/normalize/running",
                                                "/rdstream/normalize/fixed", "/rdstream/cmap"]
    for address, args in sent:
        assert parse_command(address, args) is not None, (address, args)
