/* test_backoff.c: backoff_delay (engine/backoff.c): exponential growth, the
 * max_delay cap, jitter bounds, and the edges (delay 0, attempt numbers far
 * past any real run, attempt < 1). */
#include <limits.h>
#include <math.h>
#include "engine.h"
#include "tap.h"

static struct retry_policy policy(double delay, double backoff, double max_delay, int jitter) {
  struct retry_policy p = {5, delay, backoff, max_delay, jitter};
  return p;
}

static int near(double got, double want) {
  return fabs(got - want) < 1e-9;
}

int main(void) {
  struct retry_policy p = policy(1, 2, 60, 0);
  ok(near(backoff_delay(&p, 1, 0.5), 1), "no jitter: attempt 1 waits delay (1 s)");
  ok(near(backoff_delay(&p, 2, 0.5), 2), "no jitter: attempt 2 waits delay*backoff (2 s)");
  ok(near(backoff_delay(&p, 3, 0.5), 4), "no jitter: attempt 3 waits delay*backoff^2 (4 s)");
  ok(near(backoff_delay(&p, 6, 0.9), 32), "no jitter: attempt 6 waits 32 s, random01 ignored");
  ok(near(backoff_delay(&p, 7, 0.0), 60), "no jitter: attempt 7 (64 s) is capped at max_delay 60");

  p = policy(0.5, 3, 10, 0);
  ok(near(backoff_delay(&p, 2, 0), 1.5), "fractional delay 0.5 * 3 = 1.5 s");
  ok(near(backoff_delay(&p, 4, 0), 10), "0.5 * 27 = 13.5 is capped at 10");

  p = policy(5, 2, 3, 0);
  ok(near(backoff_delay(&p, 1, 0), 3), "max_delay below delay caps the first retry too");

  p = policy(2, 1, 60, 0);
  ok(near(backoff_delay(&p, 1, 0), 2) && near(backoff_delay(&p, 50, 0), 2),
     "backoff 1: constant delay");

  p = policy(0, 2, 60, 0);
  ok(near(backoff_delay(&p, 1, 0.7), 0) && near(backoff_delay(&p, 40, 0.7), 0),
     "delay 0 stays 0 without jitter");
  p.jitter = 1;
  ok(near(backoff_delay(&p, 1, 0.7), 0) && near(backoff_delay(&p, 40, 0.7), 0),
     "delay 0 stays 0 with jitter");

  p = policy(1, 2, 60, 0);
  double huge = backoff_delay(&p, 100000, 0.5);
  ok(isfinite(huge) && near(huge, 60), "attempt 100000: finite and capped (got %g)", huge);
  huge = backoff_delay(&p, INT_MAX, 0.5);
  ok(isfinite(huge) && near(huge, 60), "attempt INT_MAX: finite and capped (got %g)", huge);
  p.jitter = 1;
  huge = backoff_delay(&p, INT_MAX, 0.999);
  ok(isfinite(huge) && huge >= 30 && huge <= 60,
     "attempt INT_MAX with jitter: in [30, 60] (got %g)", huge);

  p = policy(1, 2, 60, 0);
  ok(near(backoff_delay(&p, 0, 0), 1), "attempt 0 is treated as attempt 1");
  ok(near(backoff_delay(&p, -5, 0), 1), "negative attempt is treated as attempt 1");
  p = policy(-3, 2, 60, 0);
  ok(near(backoff_delay(&p, 2, 0), 0), "negative delay gives 0, never a negative wait");
  p = policy(1, 2, 0, 1);
  ok(near(backoff_delay(&p, 3, 0.5), 0), "max_delay 0 gives 0");

  /* jitter: uniform in [d/2, d] */
  p = policy(4, 2, 60, 1);
  ok(near(backoff_delay(&p, 1, 0), 2), "jitter, random 0: half the delay (2 of 4)");
  ok(near(backoff_delay(&p, 1, 0.5), 3), "jitter, random 0.5: three quarters (3 of 4)");
  int inside = 1;
  double lowest = 1e9, highest = -1;
  for (int attempt = 1; attempt <= 8; attempt++) {
    double full = fmin(4 * pow(2, attempt - 1), 60);
    for (int i = 0; i < 1000; i++) {
      double r = i / 1000.0;
      double d = backoff_delay(&p, attempt, r);
      if (d < full / 2 - 1e-9 || d > full + 1e-9) inside = 0;
      if (attempt == 8) {
        lowest = fmin(lowest, d);
        highest = fmax(highest, d);
      }
    }
  }
  ok(inside, "jitter: every delay within [d/2, d] for attempts 1..8 over random01 in [0, 1)");
  ok(lowest >= 30 && highest <= 60 && highest > 59,
     "jitter with the cap: attempt 8 spans [30, 60] (got %g..%g)", lowest, highest);
  p.jitter = 0;
  ok(near(backoff_delay(&p, 8, 0.0), 60) && near(backoff_delay(&p, 8, 0.99), 60),
     "same policy without jitter: exactly the cap whatever random01 is");
  return tap_done();
}
