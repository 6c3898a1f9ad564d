/* tie.h: tie_exec, the exec of a child tied to the engine (tie.c). */
#ifndef WF_TIE_H
#define WF_TIE_H

/* argv: NAME PARENT_PID FILE ARG0 [ARG...]; never returns on success;
 * who names the program in messages ("wfengine" from both: the messages of
 * a child that could not start do not depend on which ran it). */
int tie_exec(const char *who, int argc, char **argv);

#define TIE_PROGRAM "wfengine-tie"

#endif
