"""Build the network that receives rdstream in the open TouchDesigner project.

Run it in TouchDesigner's Textport (Alt+T):  exec(open(r"C:\\path\\to\\build_network.py").read())
or paste it into a Text DAT and choose "Run Script". Pick a VARIANT below (or edit SETTINGS) first.

Each variant receives one rdstream command line (VARIANTS, the README's TouchDesigner steps):
  * "depth" (default): 16-bit depth over NDI, what the README's first command sends;
  * "rgbd": the camera picture beside its depth over NDI (8-bit), split by two Crop TOPs;
  * "packed16": 16-bit depth over Spout (Windows) or Syphon (macOS: syphon: instead of spout:
    in the command), unpacked by a GLSL TOP.

It creates, inside SETTINGS["parent"]:
  * the input: an NDI In TOP (Source Name, Extra Search IPs, Input Pixel Format Native for p216)
    with an Info DAT showing each frame's metadata, or a Syphon Spout In TOP;
  * for layout=rgbd / rgbd-v, two Crop TOPs that split the picture into colour and depth;
  * for packed16, a GLSL TOP that rebuilds the 16-bit depth (R = high byte, G = low byte);
  * rdstream_control: a panel whose buttons send rdstream's OSC commands (/rdstream/pause, /stop,
    /normalize/running, /normalize/fixed, /cmap) through an OSC Out DAT to `--osc PORT`;
    its Near/Far fields are filled from the node's own range the first time it reports one;
  * rdstream_status: an OSC In DAT on `--osc-status PORT` listing what the node answers:
    /rdstream/status once a second, /rdstream/ack for each command applied and /rdstream/error
    for each command refused; the panel's "Last answer" field shows the newest ack or error.

Only documented TouchDesigner operators and parameters are used (tests/test_touchdesigner_script.py
lists them with their documentation pages). It cannot be run outside TouchDesigner, and it has
not been run inside it by the project: it is checked for syntax, for those names, and for sending
only commands rdstream accepts.
"""

import socket

PORTS = "--osc 9000 --osc-status 9001"
# name -> (what differs from SETTINGS, the rdstream command line this network receives)
VARIANTS = {
    "depth": ({}, f'rdstream run --source camera:0 --sink "ndi:Depth?format=p216" {PORTS}'),
    "rgbd": ({"format": "bgra", "layout": "rgbd"},
             f'rdstream run --source camera:0 --sink "ndi:Depth?format=bgra&layout=rgbd" {PORTS}'),
    "packed16": ({"input": "spout", "format": "packed16"},
                 f'rdstream run --source camera:0 --sink "spout:Depth?format=packed16" {PORTS}'),
}
VARIANT = "depth"

SETTINGS = {
    "parent": "/project1",
    "input": "ndi",             # "ndi", or "spout" (a Syphon Spout In TOP: Spout on Windows, Syphon on macOS)
    "name": "Depth",            # the NAME of --sink ndi:NAME / spout:NAME / syphon:NAME
    "format": "p216",           # the sink's format=: ndi p216 | bgra | uyvy; spout/syphon color | packed16
    "layout": "depth",          # "depth", "rgbd" (colour left, depth right) or "rgbd-v" (colour on top)
    "cmap": None,               # the sink's cmap= (None: grey, white = near), for the panel's labels
    "sender_ip": "127.0.0.1",   # NDI: the IP of the machine rdstream runs on (127.0.0.1: this one)
    "osc_host": "127.0.0.1",    # where rdstream runs
    "osc_port": 9000,           # rdstream run --osc 9000
    "osc_status_port": 9001,    # rdstream run --osc-status 9001
}

# What the nearest and farthest depth look like in a colour map (1 = near is the map's end). Text,
# because the panel's callbacks DAT needs it too (it relabels Near/Far when the map changes).
LABELS_SOURCE = '''NEAR_FAR_COLOURS = {
    None: ("white", "black"), "Greys_r": ("white", "black"), "gray": ("white", "black"),
    "turbo": ("dark red", "dark purple"), "Spectral_r": ("dark red", "blue-violet"),
    "inferno": ("pale yellow", "black"), "magma": ("pale yellow", "black"),
    "viridis": ("yellow", "purple"), "plasma": ("yellow", "dark blue"),
}

def near_far_labels(cmap):
    """The labels of the panel's Near and Far fields for colour map cmap."""
    near, far = NEAR_FAR_COLOURS.get(cmap, ("end of the colour map", "start of the colour map"))
    return "Near (" + near + ")", "Far (" + far + ")"
'''
exec(LABELS_SOURCE)


def _set(operator, name, value):
    """Set a parameter, or say it is missing (another TouchDesigner build) instead of failing."""
    par = getattr(operator.par, name, None)
    if par is None:
        print(f"rdstream: {operator.path} has no parameter {name!r}; set it by hand")
        return
    par.val = value


def _set_menu(operator, name, choices, by_hand):
    """Set a menu parameter to the first of ``choices`` its menu offers (names differ between builds)."""
    par = getattr(operator.par, name, None)
    offered = [c for c in choices if par is not None and c in par.menuNames]
    if not offered:
        print(f"rdstream: set {operator.path} {by_hand} by hand")
        return
    par.val = offered[0]


def _input(parent, settings):
    if settings["input"] == "ndi":
        top = parent.create(ndiinTOP, "rdstream_in")
        _set(top, "extraips", settings["sender_ip"])
        # NDI names are 'MACHINE (NAME)'; the Source Name menu lists them. Ours only on this machine.
        if settings["sender_ip"] == "127.0.0.1":
            _set(top, "name", f"{socket.gethostname().upper()} ({settings['name']})")
        else:
            print(f"rdstream: pick 'MACHINE ({settings['name']})' in {top.path}'s Source Name menu")
        # Native keeps p216's 16 bits; 8-Bit would cut them back to 8.
        _set(top, "inputpixelformat", "native" if settings["format"] == "p216" else "fixed8")
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
    made = {}
    for i, (what, (left, right, bottom, top_edge)) in enumerate(halves.items()):
        crop = parent.create(cropTOP, f"rdstream_{what}")
        crop.inputConnectors[0].connect(source)
        _set(crop, "cropleft", left)
        _set(crop, "cropright", right)
        _set(crop, "cropbottom", bottom)
        _set(crop, "croptop", top_edge)
        crop.nodeX, crop.nodeY = source.nodeX + 200, source.nodeY - 150 * i
        made[what] = crop
    return made


UNPACK_SHADER = '''// Rebuild 16-bit depth from rdstream's packed16 (R = high byte, G = low byte).
// texelFetch reads exact texels: filtering between two packed texels would mix their bytes.
out vec4 fragColor;
void main()
{
    vec4 packed = texelFetch(sTD2DInputs[0], ivec2(gl_FragCoord.xy), 0);
    float high = floor(packed.r * 255.0 + 0.5);
    float low  = floor(packed.g * 255.0 + 0.5);
    float depth = (high * 256.0 + low) / 65535.0;   // 0 = far, 1 = near
    fragColor = TDOutputSwizzle(vec4(depth, depth, depth, 1.0));
}
'''


def _unpack16(parent, packed):
    """A GLSL TOP turning a packed16 picture into one float depth channel, at the same size."""
    shader = parent.create(textDAT, "rdstream_unpack16_shader")
    shader.text = UNPACK_SHADER
    glsl = parent.create(glslTOP, "rdstream_depth16")
    glsl.inputConnectors[0].connect(packed)
    _set(glsl, "pixeldat", shader.path)
    # 8 bits would undo the unpacking: keep a float format.
    _set_menu(glsl, "format", ("r32float", "mono32float", "rgba32float", "r16float", "rgba16float"),
              "Common > Pixel Format to 32-bit float (Mono)")
    glsl.nodeX, glsl.nodeY = packed.nodeX + 200, packed.nodeY
    shader.nodeX, shader.nodeY = glsl.nodeX, glsl.nodeY - 150
    return glsl


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
        panel.par.Near.label, panel.par.Far.label = near_far_labels(panel.par.Cmap.eval())
    return
'''

STATUS_CALLBACKS = '''# What the node answers on --osc-status, shown on the rdstream_control panel.
def onReceiveOSC(dat, rowIndex, message, byteData, timeStamp, address, args, peer):
    panel = op(PANEL)
    if address.endswith("/status") and len(args) >= 6:
        near, far = float(args[4]), float(args[5])
        if not near > far:  # NaN before the first frame
            panel.par.Currentrange.val = "no depth frame yet"
            return
        panel.par.Currentrange.val = f"{near:.4g} .. {far:.4g}"
        if panel.par.Near.eval() <= panel.par.Far.eval():  # never filled (0 0): start from the node's range
            panel.par.Near.val, panel.par.Far.val = near, far
    elif address.endswith("/ack"):
        panel.par.Lastanswer.val = "applied " + " ".join(str(a) for a in args)
    elif address.endswith("/error"):
        panel.par.Lastanswer.val = "refused " + " ".join(str(a) for a in args)
    return
'''


def _control_panel(parent, settings):
    panel = parent.create(baseCOMP, "rdstream_control")
    page = panel.appendCustomPage("rdstream")
    page.appendToggle("Pause", label="Pause (hold the last frame)")
    page.appendPulse("Stop", label="Stop rdstream")
    page.appendPulse("Running", label="Running range")
    near_label, far_label = near_far_labels(settings["cmap"])
    page.appendFloat("Near", label=near_label)
    page.appendFloat("Far", label=far_label)
    page.appendPulse("Fixed", label="Use fixed range")
    page.appendStr("Cmap", label="Colour map")
    page.appendPulse("Sendcmap", label="Send colour map")
    page.appendStr("Currentrange", label="Node's range (near .. far)")
    page.appendStr("Lastanswer", label="Last answer")
    panel.par.Cmap.val = settings["cmap"] or "Greys_r"
    osc = panel.create(oscoutDAT, "rdstream_osc")
    _set(osc, "address", settings["osc_host"])
    _set(osc, "port", settings["osc_port"])
    callbacks = panel.create(parameterexecuteDAT, "rdstream_callbacks")
    callbacks.text = LABELS_SOURCE + CONTROL_CALLBACKS
    _set(callbacks, "op", panel.path)
    _set(callbacks, "pars", "Pause Stop Running Fixed Sendcmap")
    _set(callbacks, "valuechange", True)
    _set(callbacks, "onpulse", True)
    return panel


def _status_in(parent, settings, panel):
    status = parent.create(oscinDAT, "rdstream_status")
    _set(status, "port", settings["osc_status_port"])
    script = parent.create(textDAT, "rdstream_status_callbacks")
    script.text = f"PANEL = {panel.path!r}\n" + STATUS_CALLBACKS
    _set(status, "callbacks", script.path)
    status.nodeX, status.nodeY = panel.nodeX + 200, panel.nodeY
    script.nodeX, script.nodeY = status.nodeX + 200, status.nodeY
    return status


def build(settings):
    parent = op(settings["parent"])
    source = _input(parent, settings)
    parts = _crops(parent, source, settings["layout"]) if settings["layout"] in ("rgbd", "rgbd-v") else {"depth": source}
    if settings["format"] == "packed16":
        parts["depth"] = _unpack16(parent, parts["depth"])
    panel = _control_panel(parent, settings)
    panel.nodeX, panel.nodeY = source.nodeX, source.nodeY + 200
    status = _status_in(parent, settings, panel)
    print("rdstream: built", ", ".join(o.path for o in [source, *parts.values(), panel, status]))
    print("rdstream: it receives:", VARIANTS[VARIANT][1])


build(dict(SETTINGS, **VARIANTS[VARIANT][0]))
