"""Plain help for positional arguments: ``FOLDER`` in the usage line and the argument list, as
click writes it, instead of typer's ``{folder}`` (its mark for "required") and ``<str>`` /
``<list[str]>`` type labels, which read as syntax to type."""

from __future__ import annotations

from typer.core import TyperArgument, TyperCommand


class PlainArgumentsCommand(TyperCommand):
    """A typer command whose arguments show as NAME, [NAME] (optional) and NAME... (several)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                name = param.metavar or param.name.upper()
                usage = (name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else "")
                param.display_type_rich = lambda ctx: None  # no "<str>" after the name
                param._usage_display_name = lambda usage=usage: usage


# The groups of options in ``--help`` of run, file and rig (typer's ``rich_help_panel=``), in this
# order; an option without one is listed under OTHER_OPTIONS, after them.
PANEL_IO = "Input and output"
PANEL_MODEL = "Model"
PANEL_SPEED = "Speed"
PANEL_LIVE = "Live control"
PANEL_MONITORING = "Monitoring"
PANEL_ORDER = (PANEL_IO, PANEL_MODEL, PANEL_SPEED, PANEL_LIVE, PANEL_MONITORING)
OTHER_OPTIONS = "Other options"


class PanelledCommand(PlainArgumentsCommand):
    """Plain click help (it wraps cleanly at 80 columns), with the options grouped under the
    headings their ``rich_help_panel=`` names (input and output, model, speed, live control,
    monitoring) instead of one long list."""

    def format_options(self, ctx, formatter) -> None:
        arguments: list[tuple[str, str]] = []
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panels.setdefault(getattr(param, "rich_help_panel", None) or OTHER_OPTIONS, []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        ordered = [p for p in PANEL_ORDER if p in panels] + [p for p in panels if p not in PANEL_ORDER]
        for panel in sorted(ordered, key=lambda p: p == OTHER_OPTIONS):  # "Other options" (and --help) last
            with formatter.section(panel):
                formatter.write_dl(panels[panel])
