/* The floor for any syslog sender: CPU per datagram of a program that does nothing but send
 * records to a unix datagram socket (BENCHMARKS.md, "Logger").
 *
 *   cc -O2 -o /tmp/dgram-send benches/dgram-send.c
 *   /tmp/dgram-send BATCH COUNT SOCKET     # BATCH 1: write(); BATCH > 1: sendmmsg() of BATCH
 *
 * SOCKET is a syslog daemon's socket, e.g. the private rsyslogd of benches/logger-load.sh
 * (its imuxsock input) or /dev/log. Prints datagrams/s and the sender's CPU per datagram. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#define MAX_BATCH 1024

static double seconds(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s BATCH COUNT SOCKET\n", argv[0]);
    return 64;
  }
  int batch = atoi(argv[1]), n = atoi(argv[2]);
  if (batch < 1 || batch > MAX_BATCH || n < 1) {
    fprintf(stderr, "BATCH must be 1..%d and COUNT positive\n", MAX_BATCH);
    return 64;
  }
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, argv[3], sizeof a.sun_path - 1);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    perror(argv[3]);
    return 1;
  }
  char msg[] = "<134>Nov 23 19:54:07 dgram-send[1]: bench/load/x 123456";
  size_t len = sizeof msg - 1;
  static struct mmsghdr hdr[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    iov[i] = (struct iovec){.iov_base = msg, .iov_len = len};
    hdr[i].msg_hdr.msg_iov = &iov[i];
    hdr[i].msg_hdr.msg_iovlen = 1;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int sent = 0; sent < n;) {
    int k = n - sent < batch ? n - sent : batch;
    int r = k == 1 ? (write(s, msg, len) == (ssize_t)len) : sendmmsg(s, hdr, k, 0);
    if (r < 0) {
      perror("send");
      return 1;
    }
    sent += r;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double el = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  double cpu = seconds(ru.ru_utime) + seconds(ru.ru_stime);
  printf("batch %d: %.0f datagrams/s, %.2f us CPU per datagram (%ld voluntary context switches)\n",
         batch, n / el, cpu / n * 1e6, ru.ru_nvcsw);
  return 0;
}
