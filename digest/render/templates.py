"""The Jinja environment: the bundled `templates/` folder, overridable per file.

Autoescaping is decided by the template's format, read from its name without the
`.j2` suffix: HTML, MJML and XML templates escape every value; text and markdown
templates do not, and use the filters below instead.
"""

from __future__ import annotations

from functools import lru_cache
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
    )
    return env


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
