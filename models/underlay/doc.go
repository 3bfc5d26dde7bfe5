// Package underlay is the underlay compiler and the rules around it, pure
// and without I/O: it reads the underlay intent out of the tree
// (/kedge/underlay: devices, VLANs with member ports and routed
// subinterfaces per device, mutation proposals), compiles each device's
// share into OpenConfig configuration (gen/oc GoStructs, validated with
// the generated schema before anything may be sent), diffs configurations
// into gNMI operations on the OpenConfig containers Kedge owns, and
// decides, from the posture accord, whether a proposal may be compiled and
// executed.
//
// The model: the intent says what the network should be; a mutation
// (proposal) names devices and VLANs and, when the accord lets it compile,
// captures what the intent says of them at that moment (a Change per
// device). Kedge keeps, per device, the executed intent: the VLANs as the
// last executed mutations left them. A device's target configuration is
// always Compile(executed intent); executing a mutation applies its
// captured Changes to the executed intent and pushes the new target. So a
// later edit of the intent never rides along with a proposal that was
// approved before it, and an emergency change compiled before a freeze
// executes exactly as it was compiled.
//
// What Kedge owns on a device: the VLANs, the switched-vlan settings of
// the ports and the VLAN subinterfaces that appear in its targets. Other
// configuration on the device is never read as drift and never touched.
package underlay
