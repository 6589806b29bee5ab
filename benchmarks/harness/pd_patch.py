"""PureData patches that run nn~ in batch mode on a sound file and time what it costs.

The patch is written as text (Pd's file format). On ``loadbang`` it reads ``in.wav`` into the table
``in``, then creates the nn~ objects by messages to the subpatch ``work`` between two timers
(``[realtime]`` and ``[cputime]``): Pd creates objects on its one thread, which also computes the
audio, so the time those messages take is the time the audio would stop. It sends ``bufsize B`` to
each nn~ (the creation argument alone leaves 1-in/1-out rings at 4096 samples), switches DSP on,
starts ``[tabplay~ in]`` and ``[tabwrite~ out]`` on the same block, prints the timers at the given
logical times (ms of audio), and at the end writes ``out.wav`` (float32) and quits. In batch mode
(``pd -batch``) Pd computes blocks as fast as it can and waits for nn~'s compute thread when a
buffer is due, so the run's wall and CPU time are the model's.

Printed lines (Pd's console, stderr): ``load_wall_ms: X``, ``load_cpu_ms: X``, and for each mark i
``mark<i>_wall_ms: X``, ``mark<i>_cpu_ms: X`` (since DSP started).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple


@dataclass
class Canvas:
    """Objects and connections of one Pd canvas, in file order (Pd numbers objects from 0)."""

    lines: List[str] = field(default_factory=list)
    connects: List[Tuple[int, int, int, int]] = field(default_factory=list)
    count: int = 0

    def add(self, kind: str, text: str) -> int:
        """Append ``#X <kind> x y text`` (obj or msg) and return its index."""
        self.lines.append(f"#X {kind} 10 {10 + 25 * self.count} {text};")
        self.count += 1
        return self.count - 1

    def obj(self, text: str) -> int:
        return self.add("obj", text)

    def msg(self, text: str) -> int:
        return self.add("msg", text)

    def connect(self, source: int, outlet: int, sink: int, inlet: int) -> None:
        self.connects.append((source, outlet, sink, inlet))

    def body(self) -> List[str]:
        return self.lines + [f"#X connect {a} {b} {c} {d};" for a, b, c, d in self.connects]


def _send(lines: Sequence[str]) -> str:
    """A message box body that sends each ``receiver message`` line (``; pd dsp 1`` style)."""
    return " ".join(f"\\; {line}" for line in lines)


def _work_canvas() -> Tuple[Canvas, dict]:
    """The subpatch that plays ``in`` and records ``out``; nn~ objects are added to it at load."""
    work = Canvas()
    play = work.obj("r play")
    index = {"tabplay": work.obj("tabplay~ in"), "tabwrite": work.obj("tabwrite~ out")}
    work.connect(play, 0, index["tabplay"], 0)
    work.connect(play, 0, index["tabwrite"], 0)
    index["ctl"] = [work.obj(f"r nnctl{i}") for i in range(2)]
    index["first_nn"] = work.count
    return work, index


def creation_lines(model: str, methods: Sequence[str], widths: Sequence[int], index: dict) -> List[str]:
    """Messages to ``pd-work`` that create the chain ``methods`` (nn~ objects) and wire it.

    ``widths[i]`` is the number of signals between method ``i`` and ``i + 1`` (the latent size).
    Without methods the input is wired straight to the output (a patch without nn~).
    """
    lines, source = [], index["tabplay"]
    for i, method in enumerate(methods):
        node = index["first_nn"] + i
        lines.append(f"pd-work obj 10 {400 + 40 * i} nn~ {model} {method}")
        for channel in range(1 if i == 0 else widths[i - 1]):
            lines.append(f"pd-work connect {source} {channel} {node} {channel}")
        lines.append(f"pd-work connect {index['ctl'][i]} 0 {node} 0")
        source = node
    lines.append(f"pd-work connect {source} 0 {index['tabwrite']} 0")
    return lines


def _timers(main: Canvas, name: str, start: Tuple[int, int], stop: Tuple[int, int]) -> None:
    """[realtime] and [cputime] reset by ``start``, read by ``stop`` ((object, outlet) each), printed as
    ``name_wall_ms`` / ``name_cpu_ms``."""
    for timer, unit in (("realtime", "wall"), ("cputime", "cpu")):
        node = main.obj(timer)
        main.connect(*start, node, 0)
        main.connect(*stop, node, 1)
        main.connect(node, 0, main.obj(f"print {name}_{unit}_ms"), 0)


def write_patch(
    model: str, methods: Sequence[str], widths: Sequence[int], buffer: int, length: int, marks_ms: Sequence[float]
) -> str:
    """The patch text: load ``model`` as the chain ``methods``, run ``length`` samples, print timers at ``marks_ms``.

    The last mark ends the run (``out.wav`` written, Pd quits); it should be ``length`` samples.
    """
    work, index = _work_canvas()
    main = Canvas()
    main.obj(f"table in {length}")
    main.obj(f"table out {length}")
    sub = main.count
    main.count += 1  # the subpatch takes the next index in the parent
    steps = main.obj("t b b b b b")
    main.connect(main.obj("loadbang"), 0, steps, 0)
    read = main.msg("read in.wav in")
    main.connect(read, 0, main.obj("soundfiler"), 0)
    main.connect(steps, 4, read, 0)
    load = main.obj("t b b b")
    main.connect(steps, 3, load, 0)
    create = main.msg(_send(creation_lines(model, methods, widths, index)))
    main.connect(load, 1, create, 0)
    _timers(main, "load", (load, 2), (load, 0))
    if methods:
        main.connect(steps, 2, main.msg(_send([f"nnctl{i} bufsize {buffer}" for i in range(len(methods))])), 0)
    main.connect(steps, 1, main.msg(_send(["pd dsp 1"])), 0)
    start = main.obj("t b b")
    main.connect(steps, 0, start, 0)
    main.connect(start, 0, main.obj("s play"), 0)
    for i, mark in enumerate(marks_ms):
        delay, tick = main.obj(f"delay {mark:.6f}"), main.obj("t b b")
        main.connect(start, 1, delay, 0)
        main.connect(delay, 0, tick, 0)
        _timers(main, f"mark{i}", (start, 0), (tick, 1))
    end = main.obj("t b b b")
    main.connect(tick, 0, end, 0)  # the last mark ends the run, after its timers printed
    write = main.msg("write -bytes 4 out.wav out")
    main.connect(write, 0, main.obj("soundfiler"), 0)
    main.connect(end, 1, write, 0)
    main.connect(end, 2, main.msg(_send(["pd dsp 0"])), 0)
    main.connect(end, 0, main.msg(_send(["pd quit"])), 0)
    lines = ["#N canvas 0 0 600 800 12;"] + main.lines[:sub]
    lines += ["#N canvas 0 0 600 800 work 0;"] + work.body() + ["#X restore 300 10 pd work;"]
    lines += main.lines[sub:] + [f"#X connect {a} {b} {c} {d};" for a, b, c, d in main.connects]
    return "\n".join(lines) + "\n"
