"""The Jinja environment: the bundled `templates/` folder, overridable per file.

Autoescaping is decided by the template's format, read from its name without the
`.j2` suffix: HTML, MJML and XML templates escape every value; text and markdown
templates do not, and use the filters below instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

import jinja2

import digest
from digest.errors import ConfigError

_ESCAPED = (".html", ".htm", ".mjml", ".xml")


def default_templates() -> Path:
    """The bundled templates: inside the installed package, or beside a source checkout."""
    package = Path(digest.__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"bundled templates not found near {package}")


def autoescape(name: str | None) -> bool:
    """Escape by format: `email.mjml.j2` escapes, `email.txt.j2` and `post.md.j2` do not."""
    if not name:
        return True
    return name.lower().removesuffix(".j2").endswith(_ESCAPED)


@lru_cache(maxsize=8)
def environment(override: str | None = None) -> jinja2.Environment:
    """A cached environment: templates in `override` win over the bundled ones by name."""
    folders = [default_templates()]
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ConfigError(f"{override}: templates folder does not exist")
        folders.insert(0, path)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates do not change while a run renders thousands of digests: no stat()
        # of every included template on every use.
        auto_reload=False,
    )
    return env


@lru_cache(maxsize=32)
def is_bundled(override: str | None, name: str) -> bool:
    """Whether template `name` is the bundled one, not one from the `override` folder.

    Renderers lay a bundled page out faster where they know what it does with a value.
    Raises Jinja's TemplateNotFound for a template that is in neither folder.
    """
    env = environment(override)
    assert env.loader is not None
    _source, found, _uptodate = env.loader.get_source(env, name)  # found, not compiled
    return found is not None and Path(found).resolve().parent == default_templates().resolve()


def render(name: str, override: str | None = None, **context: object) -> str:
    """Render one template; a broken or missing template is a ConfigError naming it."""
    env = environment(override)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"template {name!r} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or name}:{exc.lineno}"
        raise ConfigError(f"{where}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name!r}: {exc.message}") from None


def slot(name: str) -> str:
    """A placeholder for a value filled in later (see `Slotted`)."""
    return f"\x00{name}\x00"


@dataclass(frozen=True, slots=True)
class Slotted:
    """Rendered text holding `slot`s: a fragment rendered once, filled in many times.

    Much of what digest renders is the same for every reader an item goes to, with a
    few values (a signed link, a rank, a reason) that differ. Rendering the template
    once with a `slot` for each such value, and then filling the slots per reader,
    gives the same text as rendering it per reader, at a fraction of the cost. A slot
    is NUL-delimited: no rendered value can hold one (item text loses its control
    characters to `display_text`, and links are http(s) URLs without any), and
    escaping leaves it as it is. Values go in as they are: escape them first.
    """

    #: Literal text and slot names, alternating: text, name, text, ..., text.
    parts: tuple[str, ...]
    #: The slots' values, in order, out of a mapping (one C call: fill is hot).
    _values: Callable[[Mapping[str, str]], tuple[str, ...]] = field(compare=False, repr=False)

    @classmethod
    def of(cls, text: str) -> Slotted:
        parts = tuple(text.split("\x00"))
        if len(parts) % 2 == 0:
            raise ValueError("unbalanced slot in rendered text")
        names = parts[1::2]
        if not names:
            return cls(parts, lambda values: ())
        getter = itemgetter(*names)
        return cls(parts, getter if len(names) > 1 else lambda values: (getter(values),))

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with every slot replaced by its value (KeyError for a missing one)."""
        parts = list(self.parts)
        parts[1::2] = self._values(values)
        return "".join(parts)

    def values(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The value of each slot, in order, as `fill` places them."""
        return self._values(values)

    def encoded(self) -> Slotted:
        """The same with its text as UTF-8, to fill with UTF-8 values (`fill_bytes`)."""
        parts: list[str | bytes] = list(self.parts)
        parts[::2] = [text.encode("utf-8") for text in self.parts[::2]]
        return Slotted(tuple(parts), self._values)  # type: ignore[arg-type]

    def fill_bytes(self, values: Mapping[str, bytes]) -> bytes:
        """`fill` of an `encoded` text: every value UTF-8 already."""
        parts = list(self.parts)
        parts[1::2] = self._values(values)
        return b"".join(parts)  # type: ignore[arg-type]
