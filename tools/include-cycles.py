#!/usr/bin/python3
"""Does the include graph of a component's folder (default fsd/) have a
cycle? A module is a .c file and its .h (ingest-commit.c and
ingest-internal.h belong to ingest); module A depends on B when a file of A
includes B's header from the same folder. Prints every cycle found, or the
number of modules and edges; exits 1 on a cycle.

    tools/include-cycles.py [DIR]
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module(name):
    return os.path.splitext(name)[0].split("-")[0]


def graph(folder):
    files = [f for f in os.listdir(folder) if f.endswith((".c", ".h"))]
    headers = {f for f in files if f.endswith(".h")}
    edges = {module(f): set() for f in files}
    for f in files:
        with open(os.path.join(folder, f), encoding="utf-8") as src:
            for inc in INCLUDE.findall(src.read()):
                if inc in headers and module(inc) != module(f):
                    edges[module(f)].add(module(inc))
    return edges


def cycles(edges):
    """Each back edge of a depth-first search, as the cycle it closes."""
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fsd")
    edges = graph(folder)
    found = cycles(edges)
    for c in found:
        print("cycle: " + " -> ".join(c))
    if found:
        return 1
    print("no cycle: %d modules, %d edges" % (len(edges), sum(map(len, edges.values()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
