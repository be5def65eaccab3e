package model

// MachineState is a step in the machine lifecycle:
//
//	discovered → ready → provisioning → running | installed
//	running | installed → releasing → wiping → ready
//	any state → failed (with a reason); failed → releasing | ready
//
// Transitions happen through Events; Next says which are legal.
type MachineState string

// Machine states.
const (
	StateDiscovered   MachineState = "discovered"
	StateReady        MachineState = "ready"
	StateProvisioning MachineState = "provisioning"
	StateRunning      MachineState = "running"
	StateInstalled    MachineState = "installed"
	StateReleasing    MachineState = "releasing"
	StateWiping       MachineState = "wiping"
	StateFailed       MachineState = "failed"
)

// MachineStates lists every state in lifecycle order.
var MachineStates = []MachineState{
	StateDiscovered, StateReady, StateProvisioning, StateRunning,
	StateInstalled, StateReleasing, StateWiping, StateFailed,
}

// Valid reports whether s is a known state.
func (s MachineState) Valid() bool {
	for _, v := range MachineStates {
		if s == v {
			return true
		}
	}
	return false
}

// Lifecycle events: actions from operators (provision, release, reboot),
// callbacks from the booted OS (registered, running, installed, wiping,
// wiped, failed).
const (
	EventRegister  = "register"
	EventProvision = "provision"
	EventRelease   = "release"
	EventReboot    = "reboot"
	EventRunning   = "running"
	EventInstalled = "installed"
	EventWiping    = "wiping"
	EventWiped     = "wiped"
	EventFailed    = "failed"
)

// transitions maps state → event → next state. EventFailed and EventReboot
// are handled in Next because they apply to (almost) every state.
var transitions = map[MachineState]map[string]MachineState{
	StateDiscovered:   {EventRegister: StateReady, EventProvision: StateProvisioning},
	StateReady:        {EventRegister: StateReady, EventProvision: StateProvisioning},
	StateProvisioning: {EventRunning: StateRunning, EventInstalled: StateInstalled, EventRelease: StateReleasing},
	StateRunning:      {EventRunning: StateRunning, EventRelease: StateReleasing},
	StateInstalled:    {EventInstalled: StateInstalled, EventRunning: StateInstalled, EventRelease: StateReleasing},
	StateReleasing:    {EventWiping: StateWiping, EventWiped: StateReady},
	StateWiping:       {EventWiping: StateWiping, EventWiped: StateReady},
	StateFailed:       {EventRelease: StateReleasing, EventRegister: StateReady, EventProvision: StateProvisioning},
}

// Next returns the state a machine in s moves to on event, or a
// *TransitionError when the event is not allowed in s. Reboot keeps the
// state; failed is allowed from every state.
func (s MachineState) Next(event string) (MachineState, error) {
	switch event {
	case EventReboot:
		return s, nil
	case EventFailed:
		return StateFailed, nil
	}
	if next, ok := transitions[s][event]; ok {
		return next, nil
	}
	return s, &TransitionError{State: s, Event: event}
}
