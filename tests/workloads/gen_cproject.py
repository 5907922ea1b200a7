"""gen_cproject.py DIR [NFILES=36] [SLOW_EVERY=6] [SLOW_SIZE=1500]: writes a
small C project into DIR (created) for a `make -j2` under Stasis:
  f<k>.c   int f<k>(int x), k = 0..NFILES-1; the last two files of every
           SLOW_EVERY (k % SLOW_EVERY >= SLOW_EVERY - 2) also have a
           generated function of SLOW_SIZE statements that takes the compiler
           about a second at -O2, so with -j2 both compilers are busy on
           slow files for a while: a checkpoint can land there;
  main.c   calls every f<k> and prints one line per file and a checksum;
  Makefile prog from main.o and f<k>.o (`make` builds, `./prog` runs).
Everything depends only on the arguments (tests/e2e/test_jobs.py)."""
import os
import sys


def slow_function(k, size):
    # A long chain of dependent integer updates with data-dependent branches:
    # the optimiser's passes grow with its length.
    lines = [f"static unsigned slow{k}(unsigned a, unsigned b) {{"]
    for j in range(size):
        c = (j * 2654435761 + k) & 0xFFFF
        if j % 3 == 0:
            lines.append(f"  if ((a ^ {c}u) & 1u) a = a * {c | 1}u + b; else b ^= a >> {j % 13 + 1};")
        elif j % 3 == 1:
            lines.append(f"  a += (b << {j % 7 + 1}) ^ {c}u;")
        else:
            lines.append(f"  b = (b * {c | 1}u) ^ (a >> {j % 11 + 1});")
    lines.append("  return a ^ b;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    d = sys.argv[1]
    nfiles = int(sys.argv[2]) if len(sys.argv) > 2 else 36
    slow_every = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    slow_size = int(sys.argv[4]) if len(sys.argv) > 4 else 1500
    os.makedirs(d, exist_ok=True)
    for k in range(nfiles):
        slow = slow_every > 0 and k % slow_every >= slow_every - 2
        with open(os.path.join(d, f"f{k}.c"), "w") as f:
            if slow:
                f.write(slow_function(k, slow_size))
                f.write(f"int f{k}(int x) {{ return (int)(slow{k}((unsigned)x, {k}u) & 0x7fffffff); }}\n")
            else:
                f.write(f"int f{k}(int x) {{ return x * {k + 1} + {(k * k) % 97}; }}\n")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write("#include <stdio.h>\n")
        for k in range(nfiles):
            f.write(f"int f{k}(int x);\n")
        f.write("int main(void) {\n  unsigned long sum = 0;\n  int v;\n")
        for k in range(nfiles):
            f.write(f"  v = f{k}({k + 3}); sum = sum * 31 + (unsigned)v; "
                    f"printf(\"f{k} %d\\n\", v);\n")
        f.write("  printf(\"checksum %lu\\n\", sum);\n  return 0;\n}\n")
    objs = " ".join(["main.o"] + [f"f{k}.o" for k in range(nfiles)])
    with open(os.path.join(d, "Makefile"), "w") as f:
        f.write(f"CC = cc\nCFLAGS = -O2\nOBJS = {objs}\n\n"
                "prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n"
                "%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n\n"
                "clean:\n\trm -f prog $(OBJS)\n")


if __name__ == "__main__":
    main()
