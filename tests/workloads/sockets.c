// sockets: a writer and a reader process joined by a socket, for the e2e
// tests of sockets across a restart (tests/e2e/test_sockets.py).
//   sockets MODE [N=400] [WRITE_DELAY=0.001] [READ_DELAY=0.01]
// MODE: stream (socketpair SOCK_STREAM), dgram (socketpair SOCK_DGRAM),
// seqpacket, unix (named stream socket: listen/connect/accept, path
// "sock" in the cwd), unixdgram (named datagram socket the writer sends
// to with sendto), tcp (127.0.0.1, port chosen by the kernel).
// The child writes N records "rec <i> <filler>\n" of 64 bytes (WRITE_DELAY
// apart), the parent reads them (READ_DELAY apart, so records wait in the
// socket), checks each is the next one, prints "got <i>" every 20 records
// and at the end "records <N> checksum <fnv1a of all bytes>" and the
// writer's exit status.  A lost, repeated or torn record prints "BAD ..."
// and exits 2.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kRec = 64 };

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char* what) {
  fprintf(stdout, "BAD %s: %s\n", what, strerror(errno));
  fflush(stdout);
  exit(2);
}

static int full_io(int fd, char* buf, size_t len, int writing) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = writing ? write(fd, buf + off, len - off) : read(fd, buf + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return off == 0 && n == 0 ? 0 : -1;
    off += (size_t)n;
  }
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 2) return 1;
  const char* mode = argv[1];
  int n = argc > 2 ? atoi(argv[2]) : 400;
  double wdelay = argc > 3 ? atof(argv[3]) : 0.001;
  double rdelay = argc > 4 ? atof(argv[4]) : 0.01;
  setvbuf(stdout, NULL, _IOLBF, 0);
  int stream = strcmp(mode, "stream") == 0 || strcmp(mode, "unix") == 0 || strcmp(mode, "tcp") == 0;
  int rd = -1, wr = -1, lst = -1;
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  strcpy(un.sun_path, "sock");
  struct sockaddr_in in = {.sin_family = AF_INET};
  socklen_t inlen = sizeof in;
  if (strcmp(mode, "stream") == 0 || strcmp(mode, "dgram") == 0 || strcmp(mode, "seqpacket") == 0) {
    int type = strcmp(mode, "stream") == 0 ? SOCK_STREAM : strcmp(mode, "dgram") == 0 ? SOCK_DGRAM : SOCK_SEQPACKET;
    int sv[2];
    if (socketpair(AF_UNIX, type, 0, sv) != 0) die("socketpair");
    rd = sv[0];
    wr = sv[1];
  } else if (strcmp(mode, "unix") == 0) {
    unlink("sock");
    lst = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(lst, (struct sockaddr*)&un, sizeof un) != 0 || listen(lst, 4) != 0) die("bind/listen");
  } else if (strcmp(mode, "unixdgram") == 0) {
    unlink("sock");
    rd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (bind(rd, (struct sockaddr*)&un, sizeof un) != 0) die("bind");
  } else if (strcmp(mode, "tcp") == 0) {
    lst = socket(AF_INET, SOCK_STREAM, 0);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lst, (struct sockaddr*)&in, sizeof in) != 0 || listen(lst, 4) != 0) die("bind/listen");
    if (getsockname(lst, (struct sockaddr*)&in, &inlen) != 0) die("getsockname");
  } else {
    return 1;
  }
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    if (rd >= 0 && wr >= 0) close(rd);
    if (lst >= 0) close(lst);
    if (strcmp(mode, "unix") == 0) {
      wr = socket(AF_UNIX, SOCK_STREAM, 0);
      if (connect(wr, (struct sockaddr*)&un, sizeof un) != 0) die("connect");
    } else if (strcmp(mode, "unixdgram") == 0) {
      close(rd);
      wr = socket(AF_UNIX, SOCK_DGRAM, 0);
      if (connect(wr, (struct sockaddr*)&un, sizeof un) != 0) die("connect");
    } else if (strcmp(mode, "tcp") == 0) {
      wr = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(wr, (struct sockaddr*)&in, sizeof in) != 0) die("connect");
    }
    for (int i = 1; i <= n; i++) {
      char rec[kRec];
      memset(rec, 'a' + i % 26, sizeof rec);
      int len = snprintf(rec, sizeof rec, "rec %d ", i);
      rec[len] = 'x';
      rec[kRec - 1] = '\n';
      if (stream ? full_io(wr, rec, kRec, 1) != 1 : send(wr, rec, kRec, 0) != kRec) _exit(3);
      sleep_seconds(wdelay);
    }
    _exit(0);
  }
  if (wr >= 0) close(wr);
  if (lst >= 0) {
    rd = accept(lst, NULL, NULL);
    if (rd < 0) die("accept");
  }
  uint64_t h = 1469598103934665603ull;
  int got = 0;
  for (int i = 1; i <= n; i++) {
    char rec[kRec + 1];
    if (stream) {
      int r = full_io(rd, rec, kRec, 0);
      if (r != 1) die(r == 0 ? "early end of stream" : "read");
    } else {
      ssize_t r = recv(rd, rec, sizeof rec, 0);
      if (r != kRec) die("short datagram");
    }
    int idx = 0;
    if (sscanf(rec, "rec %d ", &idx) != 1 || idx != i || rec[kRec - 1] != '\n') {
      rec[kRec] = '\0';
      printf("BAD record %d: %.30s\n", i, rec);
      return 2;
    }
    for (int k = 0; k < kRec; k++) h = (h ^ (unsigned char)rec[k]) * 1099511628211ull;
    got++;
    if (i % 20 == 0) printf("got %d\n", i);
    sleep_seconds(rdelay);
  }
  int st = 0;
  waitpid(child, &st, 0);
  printf("records %d checksum %016llx\n", got, (unsigned long long)h);
  printf("writer status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return 0;
}
