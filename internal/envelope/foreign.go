package envelope

// ReasonNotRecorded is shown for the failure_reason of a DLQ entry whose
// producer recorded none. Protean writes no failure_reason; an empty
// reason would read as "failed for no reason", which is not what happened.
const ReasonNotRecorded = "not recorded (written by another producer)"
