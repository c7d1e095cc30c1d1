"""Turn a Markdown deployment checklist into plain data the importer can save.

This module is pure Python on purpose: it imports nothing from Django, so the parser is tested
without a database and the ``import_checklist`` command only has to save what it returns.

How the Markdown maps to the structure (see ``/work/shared/seed/mingus-deployment-checklist.md``):

* ``# Title`` (the first block) is ``ParsedChecklist.title``, emoji kept. A ``## Subtitle`` on
  the very next line is the subtitle. ``### **Key**: value`` headings right after them are
  ``metadata`` (bold dropped, emoji kept).
* Every other ``##`` heading opens a top-level section; a ``---`` rule closes it. Section
  titles lose their bold markers and leading emoji ("Pre-Deployment Phase"). The title decides
  what the section is:

  - "Rollback Plan" and "Success Criteria" are phases of kind ``rollback`` and ``success``;
  - "Emergency Contacts" holds ``- [ ] **Label**: placeholder`` lines: ``ParsedContact``;
  - "Checklist Completion" is worked out by the app, so only its title is kept
    (``computed_sections``);
  - "Next Steps", and any other section without checkboxes, is ``ParsedGuidance``;
  - any other section with checkboxes is a phase, in document order (gated unless its
    heading says otherwise, see ``gating_of``).

* Inside a phase (see ``_parse_phase``): ``###`` (or deeper) headings with ``- [ ]`` items
  under them are groups; a ``- [ ] **Group**`` list item with items nested one level under it
  is a group too (the seed's shape), the nearest heading above being its section; items written
  directly under the phase heading form a group named after the phase, or "General". Items may
  be ``-``, ``*``, ``+`` or ``1.`` list items; their text drops bold/italic markers, keeps inline
  code in back-ticks, joins lines, and drops ``<!-- comments -->``; ``if_applicable`` is set
  when it says "(if applicable)". Prose inside a phase is kept as guidance.
* Checkboxes before the first ``##`` (a flat task list) are one phase named after the title.
* Phases are gated in order unless their heading says otherwise (``gating_of``); numbering
  ("1.", "Phase 2:") is dropped from headings.
* Paragraphs between a ``---`` and the next ``##`` (the closing notes) are ``ParsedGuidance``
  too, titled by their bold lead ("IMPORTANT").
* ``- [x]`` is read like ``- [ ]`` with a note in ``notes``: a template carries no state.

Unusable input (no title, no checkbox at all, an item nested under an item, two groups of one
name in a phase, text longer than its field, a NUL byte, bytes that are not UTF-8, ...) raises
``ChecklistParseError`` naming the line, so a broken file never half-imports.

Double-encoded text ("ğŸš€" for "🚀") is repaired with ftfy first; see ``repair_text``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import ftfy
import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-windows-* codecs used below)
from ftfy.badness import is_bad
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

GATED = "gated"
ROLLBACK = "rollback"
SUCCESS = "success"
OPEN = "open"  # not gated: open from the start, worked alongside the gated phases
PHASE_KINDS = (GATED, ROLLBACK, SUCCESS, OPEN)

# The group of items written directly under a phase heading that has other groups too.
GENERAL_GROUP = "General"

_PHASE = "phase"  # a section with checkboxes: a phase, gated or not as its heading says

_CONTACTS = "contacts"
_COMPUTED = "computed"
_GUIDANCE = "guidance"

# Sections recognised by title (case-insensitive, after bold and emoji are stripped).
_SPECIAL_SECTIONS = {
    "rollback plan": ROLLBACK,
    "success criteria": SUCCESS,
    "emergency contacts": _CONTACTS,
    "checklist completion": _COMPUTED,
    "next steps": _GUIDANCE,
}

_CHECKBOX = re.compile(r"^\[([ xX])\](?:\s+|$)")
_IF_APPLICABLE = re.compile(r"\(if applicable\)", re.IGNORECASE)
_LISTS = ("bullet_list", "ordered_list")

_MARKDOWN = MarkdownIt("commonmark")

# The longest text each part may hold: the max_length of the field it is saved in
# (checklist/models.py; a test keeps the two in step). Checked here, before anything is saved,
# so an over-long line is an error naming it rather than a database exception.
MAX_LENGTHS = {
    "title": 300,
    "subtitle": 300,
    "phase title": 200,
    "group title": 200,
    "section": 200,
    "item text": 500,
    "contact label": 200,
    "contact placeholder": 300,
}
# The most items one checklist may hold. A deployment runbook is read and ticked by people on
# one page (the MINGUS seed has 136); a file of tens of thousands of lines is a mistake or an
# attack on every page that shows it, refused with its count rather than imported.
MAX_ITEMS = 2000


class ChecklistParseError(ValueError):
    """The checklist cannot be imported; ``line`` (1-based) points at the culprit when known."""

    def __init__(self, line: int | None, message: str):
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass
class ParsedItem:
    text: str
    line: int
    if_applicable: bool


@dataclass
class ParsedGroup:
    title: str
    section: str
    line: int
    items: list[ParsedItem] = field(default_factory=list)


@dataclass
class ParsedPhase:
    title: str
    kind: str  # one of PHASE_KINDS
    line: int
    groups: list[ParsedGroup] = field(default_factory=list)
    gating_reason: str = ""  # why the phase is (or is not) gated, for the import report


@dataclass
class ParsedContact:
    section: str
    label: str
    placeholder: str
    line: int


@dataclass
class ParsedGuidance:
    title: str
    markdown: str
    line: int


@dataclass
class ParsedChecklist:
    title: str
    subtitle: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    phases: list[ParsedPhase] = field(default_factory=list)
    contacts: list[ParsedContact] = field(default_factory=list)
    guidance: list[ParsedGuidance] = field(default_factory=list)
    computed_sections: list[str] = field(default_factory=list)
    # (line, message): what the import changed or left out, for the import report.
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def group_count(self) -> int:
        return sum(len(phase.groups) for phase in self.phases)

    @property
    def item_count(self) -> int:
        return sum(len(group.items) for phase in self.phases for group in phase.groups)


# --- Mojibake repair -------------------------------------------------------------------------

_FTFY_CONFIG = ftfy.TextFixerConfig(
    # Markdown decides what an entity means, and `&amp;` inside code must survive.
    unescape_html=False,
    # Curly quotes and full-width letters are the author's typography, not damage.
    uncurl_quotes=False,
    fix_character_width=False,
    # Error messages quote line numbers of the file as written.
    fix_line_breaks=False,
)

# A space byte is never part of a multi-byte UTF-8 sequence, so mojibake never spans one.
_WORD = re.compile(r"[^ \t\r\n]+")

# U+FE0F (the emoji variation selector) is EF B8 8F; 0x8F has no character in cp1252/cp1254,
# so it is dropped when the text is double-encoded, leaving a dangling "ï¸".
_LOST_VS16 = re.compile(rb"\xef\xb8(?![\x80-\xbf])")


def repair_text(text: str) -> str:
    """Undo double-encoded UTF-8 ("ğŸš€" -> "🚀") as far as the bytes allow; never raises.

    Repair is done word by word. Run over a whole line, ftfy guesses that the space after a
    truncated emoji was a mangled no-break space and "repairs" "ğŸ” Post" into "🔠Post": the
    wrong emoji, and the space eaten. Word by word it cannot cross a space, so mojibake whose
    bytes are really lost is left exactly as it was.
    """
    return _WORD.sub(lambda match: _repair_word(match.group()), text)


def _repair_word(word: str) -> str:
    if word.isascii():
        return word
    try:
        fixed = ftfy.fix_text(word, _FTFY_CONFIG)
        return fixed if fixed != word else _restore_lost_vs16(word)
    except Exception:  # noqa: BLE001  (repair is best-effort; it must never block an import)
        return word


def _restore_lost_vs16(word: str) -> str:
    """Repair a word whose only loss is the last byte of U+FE0F ("âš\\xa0ï¸" -> "⚠️")."""
    for codec in ("sloppy-windows-1252", "sloppy-windows-1254"):
        try:
            raw = word.encode(codec)
        except UnicodeEncodeError:
            continue
        restored, count = _LOST_VS16.subn(b"\xef\xb8\x8f", raw)
        if not count:
            continue
        try:
            fixed = restored.decode("utf-8")
        except UnicodeDecodeError:
            continue
        # The selector only makes sense right after a symbol; alone, "ï¸" stays as it was.
        selector_at = [i for i, char in enumerate(fixed) if char == "\ufe0f"]
        if all(i > 0 and unicodedata.category(fixed[i - 1]) == "So" for i in selector_at):
            return fixed
    return word


# --- Parsing ---------------------------------------------------------------------------------


def parse_checklist(text: str | bytes) -> ParsedChecklist:
    """Parse a Markdown checklist (text, or UTF-8 bytes) into a ``ParsedChecklist``.

    Raises ``ChecklistParseError`` (and nothing else) for input that cannot be imported.
    """
    text = _normalise_newlines(_decode(text))
    if not text.strip():
        raise ChecklistParseError(1, "the checklist is empty")
    text = repair_text(text)
    lines = text.split("\n")
    # Raw HTML blocks (comments above all) hold nothing to import; the source keeps them.
    blocks = [b for b in SyntaxTreeNode(_MARKDOWN.parse(text)).children if b.type != "html_block"]
    if not blocks:  # e.g. nothing but a link reference definition or a comment
        raise ChecklistParseError(1, "the checklist must start with a '# ' title")

    checklist, rest = _parse_header(blocks)
    preamble = []
    while rest and not (_is_heading(rest[0], "h2") or rest[0].type == "hr"):
        preamble.append(rest.pop(0))
    if _has_checkbox(preamble):
        # A flat task list (or groups under '###' with no '##' above them): one phase, named
        # after the checklist.
        title = _strip_numbering(_strip_icon(checklist.title))
        _add_section(checklist, title, _line(preamble[0]), None, preamble, lines)
    else:
        checklist.guidance.extend(_loose_note(block, lines) for block in preamble)
    first_seen: dict[str, int] = {}
    for heading, body in _sections(rest):
        if heading is None:
            checklist.guidance.extend(_loose_note(block, lines) for block in body)
            continue
        title, line = _strip_numbering(_heading_text(heading)), _line(heading)
        if not title:
            raise ChecklistParseError(line, "section heading is empty")
        key = " ".join(title.casefold().split())
        if key in first_seen:
            raise ChecklistParseError(
                line, f"duplicate section '{title}' (first at line {first_seen[key]})"
            )
        first_seen[key] = line
        _add_section(checklist, title, line, _SPECIAL_SECTIONS.get(key), body, lines)

    if not checklist.phases:
        raise ChecklistParseError(
            1, "no checkbox items found: write tasks as '- [ ] ...' under '## ' phase headings"
        )
    if checklist.item_count > MAX_ITEMS:
        raise ChecklistParseError(
            None, f"{checklist.item_count} items, more than the {MAX_ITEMS} a checklist may hold: "
                  "split it into several checklists")
    if not any(phase.kind == GATED for phase in checklist.phases):
        # A runbook is signed off phase by phase: with no gated phase it could never go live.
        first = checklist.phases[0]
        first.kind, first.gating_reason = GATED, (
            f"gated although its heading reads otherwise ({first.gating_reason}): "
            "a checklist needs at least one gated phase to be signed off")
    return checklist


def decode_source(source: object) -> str:
    """The text of a checklist file as the parser reads it (UTF-8, or UTF-16 with its mark).
    Raises ``ChecklistParseError`` for what cannot be read."""
    return _decode(source)


def _decode(source: object) -> str:
    if isinstance(source, (bytes, bytearray)):
        source = bytes(source)
        if source.startswith((b"\xff\xfe", b"\xfe\xff")):
            # Windows editors save "Unicode" as UTF-16 with its byte-order mark: unambiguous, so
            # read it rather than refuse it.
            try:
                return _refuse_unstorable(source.decode("utf-16"))
            except UnicodeDecodeError:
                raise ChecklistParseError(
                    None, "starts with a UTF-16 byte-order mark but is not valid UTF-16; "
                          "save the file as UTF-8") from None
        source = source.removeprefix(b"\xef\xbb\xbf")
        try:
            return _refuse_unstorable(source.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = len(re.split(rb"\r\n|\r|\n", source[: exc.start]))
            raise ChecklistParseError(
                line, f"not valid UTF-8 (byte 0x{source[exc.start]:02x}); save the file as UTF-8"
            ) from None
    if isinstance(source, str):
        return _refuse_unstorable(source.removeprefix("\ufeff"))
    raise ChecklistParseError(None, f"expected Markdown text or bytes, got {type(source).__name__}")


# A NUL cannot be stored in PostgreSQL text; a lone surrogate (text decoded with
# "surrogateescape") cannot be encoded to UTF-8 at all.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _refuse_unstorable(text: str) -> str:
    found = _UNSTORABLE.search(text)
    if found is None:
        return text
    line = len(re.split(r"\r\n|\r|\n", text[: found.start()]))
    if found.group() == "\x00":
        raise ChecklistParseError(line, "contains a NUL byte (0x00); a checklist is plain text")
    raise ChecklistParseError(line, "not valid UTF-8 (an undecodable byte); save the file as UTF-8")


def _normalise_newlines(text: str) -> str:
    # The same rule markdown-it applies, so our line list matches its token maps.
    return re.sub(r"\r\n?", "\n", text)


def _parse_header(blocks: list[SyntaxTreeNode]) -> tuple[ParsedChecklist, list[SyntaxTreeNode]]:
    """Read the title, subtitle and metadata; return the checklist and the remaining blocks."""
    first = blocks[0]
    if first.type != "heading" or first.tag != "h1":
        raise ChecklistParseError(_line(first), "the checklist must start with a '# ' title")
    checklist = ParsedChecklist(title=_bounded(_inline_text(first).strip(), _line(first), "title"))
    if not checklist.title:
        raise ChecklistParseError(_line(first), "the '# ' title is empty")
    position = 1
    if position < len(blocks) and _is_heading(blocks[position], "h2"):
        candidate = blocks[position]
        # Only the line right under the title, and only when no checkbox item follows it before
        # the next `##` or rule: a `##` that heads items is the first phase, blank line or not.
        following = []
        for block in blocks[position + 1:]:
            if _is_heading(block, "h2") or block.type == "hr":
                break
            following.append(block)
        if candidate.map[0] == first.map[1] and not _has_checkbox(following):
            checklist.subtitle = _bounded(_inline_text(candidate).strip(), _line(candidate),
                                          "subtitle")
            position += 1
    # '### **Key**: value' lines right under the title are metadata; any other '###' there is
    # the first group of a checklist without '##' phases.
    while position < len(blocks) and _is_heading(blocks[position], "h3"):
        key, colon, value = _inline_text(blocks[position]).partition(":")
        if not colon or not key.strip() or len(key) > 60:
            break
        checklist.metadata[key.strip()] = value.strip()
        position += 1
    return checklist, blocks[position:]


def _sections(blocks):
    """Yield (heading, body) per ``##`` section, and (None, [block]) for a block outside one.

    A ``---`` rule closes the open section, so the notes after the last rule stand alone.
    """
    heading, body = None, []
    for block in blocks:
        if _is_heading(block, "h2") or block.type == "hr":
            if heading is not None:
                yield heading, body
            heading, body = (block if block.type == "heading" else None), []
        elif heading is not None:
            body.append(block)
        else:
            yield None, [block]
    if heading is not None:
        yield heading, body


def loose_note_title(markdown: str) -> str:
    """The title a one-block note outside any section gets on import (its bold lead, or
    "Note"): the exporter puts a note back there only when it would get its own title again."""
    blocks = SyntaxTreeNode(_MARKDOWN.parse(markdown)).children
    if len(blocks) != 1 or _has_checkbox(blocks):
        return ""
    return _loose_note(blocks[0], markdown.split("\n")).title


def _loose_note(block: SyntaxTreeNode, lines: list[str]) -> ParsedGuidance:
    if _has_checkbox([block]):
        raise ChecklistParseError(
            _line(block), "checkbox item after a '---' rule, outside any '## ' section: "
            "put a '## ' heading above it")
    title = "Note"
    if block.type == "heading":
        title = _heading_text(block) or title
    elif block.type == "paragraph":
        # markdown-it puts an empty text node before a leading "**".
        lead = [node for node in block.children[0].children if node.content or node.children]
        if lead and lead[0].type == "strong":
            title = _strip_icon(_plain(lead[0].children)) or title
    return ParsedGuidance(title=title, markdown=_source([block], lines), line=_line(block))


def _add_section(checklist, title, line, role, body, lines) -> None:
    if role is None:
        role = _PHASE if _has_checkbox(body) else _GUIDANCE
    if role == _PHASE or role in PHASE_KINDS:
        phase, notes = _parse_phase(title, role, line, body, checklist.notes)
        checklist.phases.append(phase)
        if notes:
            checklist.guidance.append(ParsedGuidance(phase.title, _source(notes, lines), _line(notes[0])))
    elif role == _CONTACTS:
        checklist.contacts.extend(_parse_contacts(body))
    elif role == _COMPUTED:
        checklist.computed_sections.append(title)
    else:
        checklist.guidance.append(ParsedGuidance(title, _source(body, lines), line))


# --- Gating ----------------------------------------------------------------------------------

# A heading may say how its phase is gated, in brackets: "## Monitoring (not gated)".
_GATING_MARKER = re.compile(
    r"\s*[(\[]\s*(not gated|ungated|any ?time|any order|gated|in order|rollback|success criteria)"
    r"\s*[)\]]\s*$", re.I)
_MARKED = {"gated": GATED, "in order": GATED, "rollback": ROLLBACK, "success criteria": SUCCESS}
# Sections worked when needed or judged at the end, never one after another (as the seed's
# Rollback Plan and Success Criteria).
_NOT_IN_ORDER = [
    (re.compile(r"\b(roll ?back|back ?out|revert)\b", re.I), ROLLBACK,
     "a rollback section is worked when it is needed, not in order"),
    (re.compile(r"\b(success|acceptance) (criteria|metrics)\b|\bdefinition of done\b", re.I),
     SUCCESS, "success criteria are judged as the deployment goes, not worked in order"),
    (re.compile(r"\b(monitoring|on-?call|ongoing|continuous|appendix|reference|troubleshooting)\b",
                re.I), OPEN, "a monitoring-like section runs alongside the others"),
]


def gating_of(title: str) -> tuple[str, str, str]:
    """(kind, title without a gating marker, why) for a phase heading, e.g.
    "Rollback" -> (ROLLBACK, "Rollback", "a rollback section is worked when ...")."""
    marker = _GATING_MARKER.search(title)
    if marker:
        said = marker.group(1).lower()
        bare = title[: marker.start()].strip() or title
        kind = _MARKED.get(said, OPEN)
        return kind, bare, f"the heading says '({marker.group(1)})'"
    for pattern, kind, why in _NOT_IN_ORDER:
        if pattern.search(title):
            return kind, title, why
    return GATED, title, "phases are gated in order unless their heading says otherwise"


# --- Phases, groups and items ----------------------------------------------------------------


def _parse_phase(title: str, role: str, line: int, body, notes_out) -> tuple[ParsedPhase, list]:
    """Read one phase. Every shape below is accepted, mixed as the author likes:

    * ``### Group`` (or deeper) headings with ``- [ ] item`` lists under them;
    * ``- [ ] **Group**`` list items with their items nested one level under them (the seed's
      shape; the box on the group line is optional), the nearest heading above being the
      group's section;
    * ``- [ ] item`` written directly under the phase heading: a group named after the phase,
      or "General" when the phase has other groups too.

    Returns the phase and its prose (paragraphs, plain lists, code), kept as guidance.
    """
    if role in PHASE_KINDS:
        kind, why = role, next(w for _, k, w in _NOT_IN_ORDER if k == role)
    else:
        kind, title, why = gating_of(title)
    phase = ParsedPhase(title=_bounded(title, line, "phase title"), kind=kind, line=line,
                        gating_reason=why)
    direct = None  # the group of items written directly under the phase heading
    heading_group = None  # the group the latest sub-heading opened (saved once it has items)
    headings: dict[int, str] = {}  # the open sub-headings by level
    prose = []
    for block in body:
        if block.type == "heading":
            level = int(block.tag[1])
            text = _strip_numbering(_heading_text(block))
            if not text:
                raise ChecklistParseError(_line(block), "heading is empty")
            for deeper in [lvl for lvl in headings if lvl >= level]:
                del headings[deeper]
            outer = [headings[lvl] for lvl in sorted(headings)]
            headings[level] = _bounded(text, _line(block), "section")
            heading_group = ParsedGroup(title=_bounded(text, _line(block), "group title"),
                                        section=outer[-1] if outer else "", line=_line(block))
            continue
        if block.type not in _LISTS or not _has_checkbox([block]):
            prose.append(block)
            continue
        has_groups = any(_nested_lists(node) for node in block.children)
        for node in block.children:
            if _nested_lists(node):
                group = _parse_group(node, headings[max(headings)] if headings else "", notes_out)
                phase.groups.append(group)
                continue
            if has_groups and _is_all_bold(_split_list_item(node)[0]):
                raise ChecklistParseError(
                    _line(node), f"group '{_item_text(node)[0]}' has no items")
            item = _parse_item(node, notes_out)
            if heading_group is not None:
                if not any(g is heading_group for g in phase.groups):
                    phase.groups.append(heading_group)
                heading_group.items.append(item)
            else:
                if direct is None:
                    direct = ParsedGroup(title="", section="", line=item.line)
                    phase.groups.append(direct)
                direct.items.append(item)
    if not phase.groups:
        raise ChecklistParseError(line, f"phase '{title}' has no '- [ ]' items")
    if direct is not None:
        direct.title = phase.title if len(phase.groups) == 1 else GENERAL_GROUP
    _refuse_duplicate_groups(phase)
    return phase, prose


def _refuse_duplicate_groups(phase: ParsedPhase) -> None:
    """Two groups of one name in a phase cannot be told apart on the page, in the history or by
    a binding; the second is refused, naming both lines."""
    first_seen: dict[str, int] = {}
    for group in phase.groups:
        key = " ".join(group.title.casefold().split())
        if key in first_seen:
            raise ChecklistParseError(
                group.line, f"duplicate group '{group.title}' in phase '{phase.title}' "
                f"(first at line {first_seen[key]})"
            )
        first_seen[key] = group.line


def _nested_lists(node: SyntaxTreeNode) -> list[SyntaxTreeNode]:
    """The lists under a list item that hold checkboxes: what makes the item a group."""
    return [child for child in _content(node)[1:]
            if child.type in _LISTS and _has_checkbox([child])]


def _parse_group(node: SyntaxTreeNode, section: str, notes_out) -> ParsedGroup:
    title, _ = _item_text(node, box_required=False)
    sublists = _content(node)[1:]
    for child in sublists:
        if child.type not in _LISTS:
            raise ChecklistParseError(_line(child), f"unexpected {_describe(child)} in group '{title}'")
    items = [_parse_item(item, notes_out, in_group=True)
             for sublist in sublists for item in sublist.children]
    return ParsedGroup(title=_bounded(title, _line(node), "group title"), section=section,
                       line=_line(node), items=items)


def _parse_item(node: SyntaxTreeNode, notes_out, in_group=False) -> ParsedItem:
    text, ticked = _item_text(node, box_required=not in_group)
    extra = []
    for child in _content(node)[1:]:
        if child.type == "paragraph":
            extra.append(_inline_text(child).strip())  # a second paragraph of the item's text
        elif child.type in _LISTS and not _has_checkbox([child]):
            extra.extend(_inline_text(li.children[0]).strip() for li in child.children
                         if li.children and li.children[0].type == "paragraph")
        else:
            nested = child.type in _LISTS
            what = "checkbox nested too deep" if nested else f"unexpected {_describe(child)}"
            raise ChecklistParseError(
                _line(child), f"{what} under item '{text}': items sit one level under their group"
            )
    text = " ".join([text, *[e for e in extra if e]])
    line = _line(node)
    if ticked:
        notes_out.append((line, f"'{text[:60]}' was ticked ([x]) in the file; "
                                "imported unticked: ticks are made in a runbook"))
    return ParsedItem(text=_bounded(text, line, "item text"), line=line,
                      if_applicable=bool(_IF_APPLICABLE.search(text)))


def _item_text(node: SyntaxTreeNode, box_required=True) -> tuple[str, bool]:
    """(text, ticked) of a list item: its first paragraph without the '[ ]' or '[x]' box."""
    head, _ = _split_list_item(node)
    text = _inline_text(head).strip()
    marker = _CHECKBOX.match(text)
    if marker is None:
        if box_required:
            raise ChecklistParseError(_line(node), f"list item '{text}' has no '[ ]' checkbox")
        if not text:
            raise ChecklistParseError(_line(node), "list item has no text")
        return text, False
    rest = text[marker.end():].strip()
    if not rest:
        raise ChecklistParseError(_line(node), "checkbox item has no text")
    return rest, marker.group(1) in "xX"


def _parse_contacts(body) -> list[ParsedContact]:
    contacts, section = [], ""
    for block in body:
        if _is_heading(block, "h3"):
            section = _bounded(_heading_text(block), _line(block), "section")
            continue
        if block.type not in _LISTS:
            raise ChecklistParseError(_line(block), f"unexpected {_describe(block)} among contacts")
        for node in block.children:
            head, rest = _split_list_item(node)
            if rest:
                raise ChecklistParseError(_line(rest[0]), "contacts cannot have nested content")
            text = _CHECKBOX.sub("", _inline_text(head).strip(), count=1)
            label, colon, placeholder = text.partition(":")
            if not colon or not label.strip():
                raise ChecklistParseError(
                    _line(node), "a contact must read '- [ ] **Label**: placeholder'"
                )
            contacts.append(ParsedContact(
                section, _bounded(label.strip(), _line(node), "contact label"),
                _bounded(placeholder.strip(), _line(node), "contact placeholder"), _line(node)))
    return contacts


# --- Small readers over the syntax tree -----------------------------------------------------


def _bounded(text: str, line: int, what: str) -> str:
    """`text` if it fits the field it is saved in; otherwise an error naming the line."""
    limit = MAX_LENGTHS[what]
    if len(text) > limit:
        raise ChecklistParseError(
            line, f"{what} is {len(text)} characters long, more than the {limit} allowed"
        )
    return text


def _line(node: SyntaxTreeNode) -> int:
    return node.map[0] + 1 if node.map else 1


def _is_heading(node: SyntaxTreeNode, tag: str) -> bool:
    return node.type == "heading" and node.tag == tag


def _describe(node: SyntaxTreeNode) -> str:
    if node.type == "heading":
        return f"'{'#' * int(node.tag[1])}' heading"
    names = {"fence": "code block", "code_block": "code block", "hr": "'---' rule"}
    return names.get(node.type, node.type.replace("_", " "))


def _split_list_item(node: SyntaxTreeNode) -> tuple[SyntaxTreeNode, list[SyntaxTreeNode]]:
    if not node.children or node.children[0].type != "paragraph":
        raise ChecklistParseError(_line(node), "list item has no text")
    return node.children[0], _content(node)[1:]


def _content(node: SyntaxTreeNode) -> list[SyntaxTreeNode]:
    """A node's children without raw HTML blocks (comments): they hold nothing to import."""
    return [child for child in node.children if child.type != "html_block"]


def _is_all_bold(paragraph: SyntaxTreeNode) -> bool:
    """True for '[ ] **Title**': a group heading that lost its items."""
    children = paragraph.children[0].children
    rest = [child for child in children[1:] if child.type != "text" or child.content.strip()]
    return bool(rest) and all(child.type == "strong" for child in rest)


def _has_checkbox(blocks) -> bool:
    for block in blocks:
        for node in _walk(block):
            if node.type == "list_item" and node.children and node.children[0].type == "paragraph":
                if _CHECKBOX.match(_inline_text(node.children[0]).strip()):
                    return True
    return False


def _walk(node: SyntaxTreeNode):
    yield node
    for child in node.children:
        yield from _walk(child)


def _inline_text(block: SyntaxTreeNode) -> str:
    """Plain text of a heading or paragraph (its single inline child)."""
    return _plain(block.children[0].children) if block.children else ""


def _plain(nodes) -> str:
    """Render inline nodes as text: emphasis markers dropped, code and links kept as Markdown."""
    parts = []
    for node in nodes:
        if node.type == "html_inline" and node.content.startswith("<!--"):
            parts.append(_COMMENT)  # a comment is the author's aside, not the item's text
        elif node.type in ("text", "html_inline"):
            parts.append(node.content)
        elif node.type == "code_inline":
            parts.append(f"{node.markup}{node.content}{node.markup}")
        elif node.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif node.type == "link" and node.markup != "autolink":
            parts.append(f"[{_plain(node.children)}]({node.attrs.get('href', '')})")
        else:
            parts.append(_plain(node.children))
    return _COMMENT_GAP.sub(lambda m: " " if m.group().startswith(" ") and m.group().endswith(" ")
                            else "", "".join(parts))


# Where a comment stood (NUL never reaches here: _decode refuses it), and the spaces around it.
_COMMENT = "\x00"
_COMMENT_GAP = re.compile(r" ?\x00+ ?")


# "1. Pre-Deployment", "2) Migration", "Phase 3: Deployment", "Step 4 - Verify": the number
# is the position, which the order already holds.
_NUMBERING = re.compile(
    r"^(?:(?:phase|step|stage|part)\s+\d+\s*[.):\-\u2013\u2014]|\d+(?:\.\d+)*[.)])\s+", re.I)


def _strip_numbering(text: str) -> str:
    bare = _NUMBERING.sub("", text, count=1).strip()
    return bare or text


def _heading_text(heading: SyntaxTreeNode) -> str:
    return _strip_icon(_inline_text(heading))


def _strip_icon(text: str) -> str:
    """Drop a leading emoji word: "✅ Monitoring Setup" -> "Monitoring Setup".

    Also drops mojibake that could not be repaired ("ğŸ” Post-Deployment Phase"), which is
    what such a word is; a real word ("Ébauche", "日本語") stays.
    """
    first, _, rest = text.strip().partition(" ")
    has_ascii_word = any(char.isascii() and char.isalnum() for char in first)
    has_symbol = any(unicodedata.category(char).startswith("S") for char in first)
    if rest and not has_ascii_word and (has_symbol or is_bad(first)):
        return rest.strip()
    return text.strip()


def _source(blocks, lines: list[str]) -> str:
    """The Markdown source of consecutive blocks, as written (after repair)."""
    if not blocks:
        return ""
    return "\n".join(lines[blocks[0].map[0]: blocks[-1].map[1]]).strip()
