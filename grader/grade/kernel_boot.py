"""The grading kernel's entry point: ipykernel, with what one cell may print capped at the source.

Run as a script (`python .../kernel_boot.py -f CONNECTION_FILE`), so that nothing of the grader
is imported before the notebook runs. ipykernel gathers a cell's printed text between flushes
into one message, and IPython 9 keeps a copy of all of it for its output history: a cell
printing in an endless loop sent messages of 400 MB and grew the kernel by gigabytes. Here each
cell's stdout and stderr keep their first MAX_CELL_TEXT characters, the rest is dropped with
one notice, and the output history is off, so neither the kernel nor the grade process grows.
Lines carrying the grader's result marker always go through (at most MAX_MARKED a cell), so a
notebook cannot hide the grader's result by printing first, and a forged result line is seen.
"""

import sys
from pathlib import Path

MARK = "@@contrastive-drills-grade@@"  # results.MARK (this script imports nothing of the grader)
MAX_CELL_TEXT = 2_000_000  # characters per cell and stream
MAX_MARKED = 8
MAX_DISPLAYS = 200  # display outputs (figures, HTML) per cell


def _cap_streams() -> None:
    from ipykernel.iostream import OutStream

    write = OutStream.write

    def capped(self, string):
        if not isinstance(string, str):
            return write(self, string)
        key = self.parent_header.get("msg_id")
        used = self.__dict__.setdefault("_grader_used", {})
        if len(used) > 64:  # only the current cells matter
            used.clear()
        chars, marked = used.get(key, (0, 0))
        if MARK in string:
            if marked >= MAX_MARKED:
                return len(string)
            used[key] = (chars, marked + 1)
            return write(self, string)
        if chars >= MAX_CELL_TEXT:
            return len(string)
        room = MAX_CELL_TEXT - chars
        used[key] = (chars + len(string), marked)
        if len(string) <= room:
            return write(self, string)
        write(self, string[:room] + f"\n[the grader kept only the first {MAX_CELL_TEXT:,} "
              "characters of this cell's output]\n")
        return len(string)

    OutStream.write = capped


def _no_output_history() -> None:
    """IPython 9 keeps a copy of every printed string for its output history (_tee), which no
    grading needs and which grows without bound in a loop: switched off."""
    from contextlib import nullcontext

    from IPython.core.interactiveshell import InteractiveShell

    if hasattr(InteractiveShell, "_tee"):
        InteractiveShell._tee = lambda self, channel: nullcontext()


def _cap_displays() -> None:
    from ipykernel.zmqshell import ZMQDisplayPublisher

    publish = ZMQDisplayPublisher.publish

    def capped(self, data, metadata=None, *args, **kwargs):
        key = self.parent_header.get("msg_id")
        counts = self.__dict__.setdefault("_grader_displays", {})
        if len(counts) > 64:
            counts.clear()
        counts[key] = counts.get(key, 0) + 1
        if counts[key] > MAX_DISPLAYS:
            return None
        return publish(self, data, metadata, *args, **kwargs)

    ZMQDisplayPublisher.publish = capped


if __name__ == "__main__":
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p not in ("", here)]
    _cap_streams()
    _cap_displays()
    _no_output_history()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
