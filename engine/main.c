/* main.c: placeholder until the engine lands. */
#include <stdio.h>
int main(void) {
  puts("wfengine");
  return 0;
}
