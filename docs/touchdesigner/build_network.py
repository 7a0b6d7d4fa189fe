"""Build the network that receives rdstream in the open TouchDesigner project.

Run it in TouchDesigner's Textport (Alt+T):  exec(open(r"C:\\path\\to\\build_network.py").read())
or paste it into a Text DAT and choose "Run Script". Edit the settings below first.

It creates, inside SETTINGS["parent"]:
  * the input: an NDI In TOP (ndi:NAME sinks; Windows and macOS), or a Syphon Spout In TOP
    (spout:NAME on Windows, syphon:NAME on macOS);
  * for layout=rgbd / rgbd-v, two Crop TOPs that split the picture into colour and depth;
  * for NDI, an Info DAT on the NDI In TOP: each frame's metadata (source frame index,
    timestamp, latency, display range) as XML;
  * an OSC control panel: a Base COMP whose custom parameters send rdstream's OSC control
    addresses (/rdstream/pause, /stop, /normalize/running, /normalize/fixed, /cmap) through an
    OSC Out DAT to the port given to `rdstream run --osc PORT`.

Only documented TouchDesigner operators and parameters are used (tests/test_touchdesigner_script.py
lists them with their documentation pages). It cannot be run outside TouchDesigner.
"""

import socket

SETTINGS = {
    "parent": "/project1",
    "input": "ndi",            # "ndi" or "spout" (Spout on Windows, Syphon on macOS)
    "name": "Depth",           # the NAME of --sink ndi:NAME / spout:NAME / syphon:NAME
    "layout": "rgbd",          # "depth", "rgbd" (colour left, depth right) or "rgbd-v" (colour on top)
    "osc_host": "127.0.0.1",   # where rdstream runs
    "osc_port": 9000,          # rdstream run --osc 9000
}


def _set(operator, name, value):
    """Set a parameter, or say it is missing (another TouchDesigner build) instead of failing."""
    par = getattr(operator.par, name, None)
    if par is None:
        print(f"rdstream: {operator.path} has no parameter {name!r}; set it by hand")
        return
    par.val = value


def _input(parent, settings):
    if settings["input"] == "ndi":
        top = parent.create(ndiinTOP, "rdstream_in")
        # NDI names are 'MACHINE (NAME)'; the menu of the Source Name parameter lists them too.
        _set(top, "name", f"{socket.gethostname().upper()} ({settings['name']})")
        info = parent.create(infoDAT, "rdstream_metadata")
        _set(info, "op", top.path)
        info.nodeX, info.nodeY = top.nodeX, top.nodeY - 200
    else:
        top = parent.create(syphonspoutinTOP, "rdstream_in")
        _set(top, "sendername", settings["name"])
    return top


def _crops(parent, source, layout):
    """Colour and depth halves; Crop TOP edges are fractions, with 0 at the left and the BOTTOM."""
    halves = {
        "rgbd": {"colour": (0.0, 0.5, 0.0, 1.0), "depth": (0.5, 1.0, 0.0, 1.0)},
        "rgbd-v": {"colour": (0.0, 1.0, 0.5, 1.0), "depth": (0.0, 1.0, 0.0, 0.5)},
    }[layout]
    made = []
    for i, (what, (left, right, bottom, top_edge)) in enumerate(halves.items()):
        crop = parent.create(cropTOP, f"rdstream_{what}")
        crop.inputConnectors[0].connect(source)
        _set(crop, "cropleft", left)
        _set(crop, "cropright", right)
        _set(crop, "cropbottom", bottom)
        _set(crop, "croptop", top_edge)
        crop.nodeX, crop.nodeY = source.nodeX + 200, source.nodeY - 150 * i
        made.append(crop)
    return made


CONTROL_CALLBACKS = '''# Sends rdstream's OSC control addresses when a parameter of the panel changes.
def _send(address, *args):
    op("rdstream_osc").sendOSC(address, args)

def onValueChange(par, prev):
    if par.name == "Pause":
        _send("/rdstream/pause", int(par.eval()))
    return

def onPulse(par):
    panel = par.owner
    if par.name == "Stop":
        _send("/rdstream/stop")
    elif par.name == "Running":
        _send("/rdstream/normalize/running")
    elif par.name == "Fixed":
        _send("/rdstream/normalize/fixed", float(panel.par.Near.eval()), float(panel.par.Far.eval()))
    elif par.name == "Sendcmap":
        _send("/rdstream/cmap", panel.par.Cmap.eval())
    return
'''


def _control_panel(parent, settings):
    panel = parent.create(baseCOMP, "rdstream_control")
    page = panel.appendCustomPage("rdstream")
    page.appendToggle("Pause", label="Pause (hold the last frame)")
    page.appendPulse("Stop", label="Stop rdstream")
    page.appendPulse("Running", label="Running range")
    page.appendFloat("Near", label="Near (white)")
    page.appendFloat("Far", label="Far (black)")
    page.appendPulse("Fixed", label="Use fixed range")
    page.appendStr("Cmap", label="Colour map")
    page.appendPulse("Sendcmap", label="Send colour map")
    panel.par.Cmap.val = "turbo"
    osc = panel.create(oscoutDAT, "rdstream_osc")
    _set(osc, "address", settings["osc_host"])
    _set(osc, "port", settings["osc_port"])
    callbacks = panel.create(parameterexecuteDAT, "rdstream_callbacks")
    callbacks.text = CONTROL_CALLBACKS
    _set(callbacks, "op", panel.path)
    _set(callbacks, "pars", "Pause Stop Running Fixed Sendcmap")
    _set(callbacks, "valuechange", True)
    _set(callbacks, "onpulse", True)
    return panel


def build(settings=SETTINGS):
    parent = op(settings["parent"])
    source = _input(parent, settings)
    outputs = _crops(parent, source, settings["layout"]) if settings["layout"] in ("rgbd", "rgbd-v") else [source]
    panel = _control_panel(parent, settings)
    panel.nodeX, panel.nodeY = source.nodeX, source.nodeY + 200
    print("rdstream: built", ", ".join(o.path for o in [source, *outputs, panel]))


build()
