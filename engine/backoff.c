/* backoff.c: retry delays (exponential backoff, capped, with jitter). Pure. */
#include <math.h>
#include "engine.h"

double backoff_delay(const struct retry_policy *policy, int attempt, double random01) {
  double delay = policy->delay;
  if (attempt < 1) attempt = 1;
  if (delay < 0) delay = 0;
  /* pow() can overflow to inf for long runs of attempts: the cap handles it. */
  delay *= pow(policy->backoff > 0 ? policy->backoff : 1, attempt - 1);
  if (!(delay <= policy->max_delay)) delay = policy->max_delay;
  if (policy->jitter) delay = delay / 2 + delay / 2 * random01;
  return delay < 0 ? 0 : delay;
}
