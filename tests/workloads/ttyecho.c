// ttyecho: reads lines from stdin (its terminal, usually) and echoes each
// with a counter, for the terminal tests (tests/e2e/test_terminals.py):
//   ttyecho [cooked|noecho|raw] [devtty]
// It reads stdin, or with "devtty" its controlling terminal opened as
// /dev/tty (as programs that ask for a password do; stdin may then be
// anything).  Below, "the terminal" is what it reads.
// At start, in mode "noecho" it turns ECHO off on the terminal; in mode
// "raw" it applies cfmakeraw(3) (no echo, no canonical input, no output
// processing).  Then, for every input line (ended by '\n' or '\r'):
//   "N: TEXT"                           the line, numbered from 1
// and for the special lines
//   "mode"  -> "N: mode tty=yes|no echo=on|off icanon=on|off fg=yes|no|none"
//   "size"  -> "N: size ROWSxCOLS"      (TIOCGWINSZ, 0x0 if none)
//   "quit"  -> "N: quit", exits 0
// A SIGWINCH (handler without SA_RESTART, so the read is interrupted) prints
// "winch ROWSxCOLS" (with the next input if it came just before a read).  End of input prints "eof" and exits 0.  Lines end
// in "\r\n" in raw mode (no output processing), else "\n".  stdout is
// line-buffered even when it is not a terminal.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t g_winch = 0;
static int g_in = 0;  // the descriptor read: stdin or /dev/tty
static const char* g_eol = "\n";

static void on_winch(int sig) {
  (void)sig;
  g_winch = 1;
}

static void size_text(char* buf, size_t n) {
  struct winsize ws;
  memset(&ws, 0, sizeof ws);
  (void)ioctl(g_in, TIOCGWINSZ, &ws);
  snprintf(buf, n, "%ux%u", ws.ws_row, ws.ws_col);
}

static void answer(int count, const char* line) {
  char extra[160] = "";
  if (strcmp(line, "mode") == 0) {
    struct termios t;
    if (tcgetattr(g_in, &t) != 0) {
      snprintf(extra, sizeof extra, " tty=no");
    } else {
      pid_t fg = tcgetpgrp(g_in);
      snprintf(extra, sizeof extra, " tty=yes echo=%s icanon=%s fg=%s",
               (t.c_lflag & ECHO) ? "on" : "off", (t.c_lflag & ICANON) ? "on" : "off",
               fg < 0 ? "none" : fg == getpgrp() ? "yes" : "no");
    }
  } else if (strcmp(line, "size") == 0) {
    char s[40];
    size_text(s, sizeof s);
    snprintf(extra, sizeof extra, " %s", s);
  }
  printf("%d: %s%s%s", count, line, extra, g_eol);
  fflush(stdout);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "cooked";
  if (argc > 2 && strcmp(argv[2], "devtty") == 0) {
    g_in = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (g_in < 0) {
      perror("ttyecho: /dev/tty");
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_winch;  // no SA_RESTART: the read returns EINTR
  sigaction(SIGWINCH, &sa, NULL);

  struct termios t;
  if (strcmp(mode, "cooked") != 0) {
    if (tcgetattr(g_in, &t) != 0) {
      perror("ttyecho: tcgetattr");
      return 2;
    }
    if (strcmp(mode, "noecho") == 0) {
      t.c_lflag &= ~(tcflag_t)ECHO;
    } else if (strcmp(mode, "raw") == 0) {
      cfmakeraw(&t);
      t.c_cc[VMIN] = 1;
      t.c_cc[VTIME] = 0;
      g_eol = "\r\n";
    } else {
      fprintf(stderr, "ttyecho: unknown mode %s\n", mode);
      return 2;
    }
    if (tcsetattr(g_in, TCSANOW, &t) != 0) {
      perror("ttyecho: tcsetattr");
      return 2;
    }
  }
  printf("ready %s%s", mode, g_eol);

  char line[512];
  size_t len = 0;
  int count = 0;
  for (;;) {
    char c;
    ssize_t r = read(g_in, &c, 1);
    // The signal may also arrive just before read blocks, and is then
    // reported with the next input.
    if (g_winch) {
      g_winch = 0;
      char s[40];
      size_text(s, sizeof s);
      printf("winch %s%s", s, g_eol);
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      printf("read error: %s%s", strerror(errno), g_eol);
      return 1;
    }
    if (r == 0) {
      printf("eof%s", g_eol);
      return 0;
    }
    if (c == '\n' || c == '\r') {
      if (len == 0) continue;
      line[len] = '\0';
      len = 0;
      answer(++count, line);
      if (strcmp(line, "quit") == 0) return 0;
    } else if (len + 1 < sizeof line) {
      line[len++] = c;
    }
  }
}
