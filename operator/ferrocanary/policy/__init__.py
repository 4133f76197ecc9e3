"""The canary state machine as a pure function of spec, status, judgement and time."""
