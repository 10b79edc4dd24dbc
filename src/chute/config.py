"""Configuration: options declared once, typed, documented, validated at start.

Each service declares its options as a list of `Opt` per section (option names follow Glance
and Nova so operators can carry their glance-api.conf / nova.conf lines over). `load()` reads an
INI file, rejects unknown sections/options and bad values with one line naming the file, the
section, the option and the problem, and returns a `Config` of plain values. `dump()` prints
the effective configuration for `--show-config`.

Sections whose name is a template (`image_file_url:*`) are declared once and may appear many
times; `Config.templated("image_file_url")` returns them by NAME. A schema's `*` entry declares
the options of sections named freely (Glance's `[rack1]` of `enabled_backends = rack1:file`);
`Config.templated("*")` returns them, and the service checks their names against what declares
them.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from chute.errors import ConfigError

Converter = Callable[[str], Any]
# `Config.fail`, for code that validates settings after load without holding the Config.
Fail = Callable[[str, str, str], ConfigError]
_T = TypeVar("_T")


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not a boolean (use true or false)")


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not an integer") from None


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]


def _str(raw: str) -> str:
    return raw.strip()


CONVERTERS: dict[str, Converter] = {
    "str": _str, "int": _int, "bool": _bool, "float": _float, "list": _list,
}


@dataclass(frozen=True)
class Opt:
    """One option: its name, type, default and the comment shown by --show-config."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    check: Callable[[Any], None] | None = None  # raises ValueError with the problem

    def parse(self, raw: str) -> Any:
        value = CONVERTERS[self.type](raw)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ValueError(f"{raw.strip()!r} is not one of: {allowed}")
        if self.min is not None and value < self.min:
            raise ValueError(f"{value} is below the minimum {self.min:g}")
        if self.check is not None:
            self.check(value)
        return value


Schema = dict[str, list[Opt]]
ANY_SECTION = "*"  # the schema key of freely named sections (see the module's docstring)


@dataclass
class Config:
    """Effective configuration: section -> option -> value, plus templated sections."""

    path: str | None
    values: dict[str, dict[str, Any]]
    templates: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def get(self, section: str, option: str) -> Any:
        return self.values[section][option]

    def section(self, section: str) -> dict[str, Any]:
        return self.values[section]

    def typed(self, section: str) -> TypedSection:
        """Typed reads of `section`, for building a component's settings at start-up."""
        return TypedSection(section, self.values[section])

    def templated(self, prefix: str) -> dict[str, dict[str, Any]]:
        return self.templates.get(prefix, {})

    def fail(self, section: str, option: str, problem: str) -> ConfigError:
        """A cross-option check failed after load: build the same one-line error."""
        return ConfigError(self.path or "<defaults>", section, option, problem)


@dataclass(frozen=True)
class TypedSection:
    """One section's values read as the types their `Opt`s declare.

    The loader already converted every value, so a wrong type here is a settings class that
    disagrees with its schema (a bug): TypeError names the option.
    """

    name: str
    values: dict[str, Any]

    def _read(self, option: str, kind: type[_T]) -> _T:
        value = self.values[option]
        if not isinstance(value, kind):
            raise TypeError(f"[{self.name}] {option} is a {type(value).__name__}, not a "
                            f"{kind.__name__}")
        return value

    def string(self, option: str) -> str:
        return self._read(option, str)

    def integer(self, option: str) -> int:
        return self._read(option, int)

    def boolean(self, option: str) -> bool:
        return self._read(option, bool)

    def strings(self, option: str) -> tuple[str, ...]:
        """A `list` option, as a tuple so that frozen settings stay hashable."""
        return tuple(str(item) for item in self._read(option, list))


def _defaults(opts: list[Opt]) -> dict[str, Any]:
    return {opt.name: opt.default for opt in opts}


def load(path: str | Path | None, schema: Schema) -> Config:
    """Read `path` (None: defaults only) against `schema`; raise ConfigError on any problem."""
    fixed = {name: opts for name, opts in schema.items()
             if not name.endswith(":*") and name != ANY_SECTION}
    templated = {name[:-2]: opts for name, opts in schema.items() if name.endswith(":*")}
    if ANY_SECTION in schema:
        templated[ANY_SECTION] = schema[ANY_SECTION]
    values = {name: _defaults(opts) for name, opts in fixed.items()}
    templates: dict[str, dict[str, dict[str, Any]]] = {prefix: {} for prefix in templated}
    if path is None:
        return Config(None, values, templates)

    where = str(path)
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(where, None, None, f"cannot be read: {exc.strerror}") from None
    except configparser.Error as exc:
        problem = str(exc).splitlines()[0]
        raise ConfigError(where, None, None, f"is not a valid INI file: {problem}") from None

    for section in parser.sections():
        prefix, _, name = section.partition(":")
        if section in fixed:
            opts, target = fixed[section], values[section]
        elif name and prefix in templated:
            opts, target = templated[prefix], _defaults(templated[prefix])
            templates[prefix][name] = target
        elif ANY_SECTION in templated:
            opts, target = templated[ANY_SECTION], _defaults(templated[ANY_SECTION])
            templates[ANY_SECTION][section] = target
        else:
            raise ConfigError(where, section, None, "unknown section")
        by_name = {opt.name: opt for opt in opts}
        for option, raw in parser.items(section):
            opt = by_name.get(option)
            if opt is None:
                raise ConfigError(where, section, option, "unknown option")
            try:
                target[option] = opt.parse(raw)
            except ValueError as exc:
                raise ConfigError(where, section, option, str(exc)) from None
    return Config(where, values, templates)


def dump(config: Config, schema: Schema) -> str:
    """The effective configuration as an INI text with each option's help as a comment."""
    lines = [f"# effective configuration (file: {config.path or 'none, defaults'})"]

    def render(section: str, opts: list[Opt], current: dict[str, Any]) -> None:
        lines.append(f"\n[{section}]")
        for opt in opts:
            value = current[opt.name]
            if isinstance(value, list):
                value = ", ".join(value)
            elif isinstance(value, bool):
                value = str(value).lower()
            elif value is None:
                value = ""
            lines.append(f"# {opt.help}")
            lines.append(f"{opt.name} = {value}")

    for name, opts in schema.items():
        if name == ANY_SECTION:
            for tname, current in config.templated(ANY_SECTION).items():
                render(tname, opts, current)
        elif name.endswith(":*"):
            prefix = name[:-2]
            for tname, current in config.templated(prefix).items():
                render(f"{prefix}:{tname}", opts, current)
        else:
            render(name, opts, config.section(name))
    return "\n".join(lines) + "\n"


# Files a service writes are private by default: secrets 0600, data 0640 / directories 0750.
# `private_umask` adds group-write and all of "other" to the process umask (never loosening
# what the operator's umask already takes away); `check_private` refuses a config file that
# holds a secret while others can read or write it.
PRIVATE_UMASK = 0o027


def private_umask() -> int:
    """Make the process umask at least PRIVATE_UMASK; return the umask now in force."""
    current = os.umask(0)
    os.umask(current | PRIVATE_UMASK)
    return current | PRIVATE_UMASK


def url_has_password(url: str) -> bool:
    """Whether a database URL carries a password (`driver://user:password@host/db`): then the
    option holding it is a secret too."""
    try:
        return bool(urlsplit(url).password)
    except ValueError:  # a malformed port: not a password question
        return False


def check_private(conf: Config, secrets: list[tuple[str, str]]) -> None:
    """Raise ConfigError naming the file and option when `conf`'s file sets one of `secrets`
    ((section, option) pairs) and is readable or writable by others."""
    if conf.path is None:
        return
    for section, option in secrets:
        if not conf.values.get(section, {}).get(option):
            continue
        try:
            mode = os.stat(conf.path).st_mode & 0o7777
        except OSError as exc:
            raise conf.fail(section, option, f"cannot be checked: {exc.strerror}") from None
        if mode & 0o006:
            access = "readable" if mode & 0o004 else "writable"
            raise conf.fail(section, option, f"is a secret, but the file is {access} by others "
                                             f"(mode {mode:04o}); chmod 600 {conf.path}")
        return
