"""What the grade process keeps of a notebook's outputs: little, whatever the notebook prints.

nbclient stores every output it receives in the notebook. A cell that prints in an endless loop
then grows the grade process by tens of MB a second until the cell's time limit, and with
`--jobs` several at once. The grader needs only three things from outputs: the errors cells
raised (name and message), the grading cell's one result line, and whether any other line
looks like a result line. `Tap` keeps exactly that, in bounded memory.
"""

from __future__ import annotations

from .results import MARK

MAX_RESULT_LINE = 16 * 2**20  # characters: the result of every check of a drill is far less
MAX_LINES = 8  # result-looking lines kept per cell; more are only counted
MAX_ERROR = 2000  # characters of an error's message kept


class Tap:
    """Reads a cell's printed text as it streams in and keeps only lines that start a result
    (MARK ...), however the text is split into messages. `marks` counts every MARK seen."""

    def __init__(self):
        self.lines: list[str] = []
        self.marks = 0
        self.chars = 0
        self._carry = ""  # the end of the text so far, in case MARK is split across messages
        self._open: list[str] | None = None  # the pieces of a result line not yet ended
        self._open_len = 0

    def feed(self, text: str) -> None:
        self.chars += len(text)
        if self._open is not None:
            end = text.find("\n")
            piece = text if end < 0 else text[:end]
            if self._open_len + len(piece) <= MAX_RESULT_LINE:
                self._open.append(piece)
            self._open_len += len(piece)
            if end < 0:
                return
            self._close()
            text = text[end + 1:]
        buf = self._carry + text
        at = buf.find(MARK)
        while at >= 0:
            self.marks += 1
            end = buf.find("\n", at)
            if end < 0:
                self._open, self._open_len = [buf[at:at + MAX_RESULT_LINE]], len(buf) - at
                self._carry = ""
                return
            self._keep(buf[at:end])
            buf = buf[end + 1:]
            at = buf.find(MARK)
        self._carry = buf[-(len(MARK) - 1):]

    def _keep(self, line: str) -> None:
        if len(self.lines) < MAX_LINES and len(line) <= MAX_RESULT_LINE:
            self.lines.append(line)

    def _close(self) -> None:
        if self._open is not None and self._open_len <= MAX_RESULT_LINE:
            self._keep("".join(self._open))
        self._open, self._open_len = None, 0

    def finish(self) -> None:
        """The cell ended: a result line without its newline still counts."""
        self._close()


def text_of(msg: dict) -> str:
    """The printable text in an output message (a stream, or a result's text/plain)."""
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return content.get("text", "")
    data = content.get("data") or {}
    text = data.get("text/plain", "")
    return text if isinstance(text, str) else ""


def make_client(nb, **kwargs):
    """An nbclient NotebookClient that keeps only errors in the cells and feeds text to taps."""
    from nbclient import NotebookClient
    from nbformat.v4 import output_from_msg

    class Bounded(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            tap = self.taps.setdefault(cell_index, Tap())
            text = text_of(msg)
            if text:
                tap.feed(text)
            if msg.get("msg_type") != "error":
                return None
            content = dict(msg["content"])
            content["evalue"] = str(content.get("evalue", ""))[:MAX_ERROR]
            content["traceback"] = []
            out = output_from_msg({**msg, "content": content})
            if sum(o.get("output_type") == "error" for o in outs) < 3:
                outs.append(out)
            return out

    client = Bounded(nb, **kwargs)
    client.taps = {}
    return client

