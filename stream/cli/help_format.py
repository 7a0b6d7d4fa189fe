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
