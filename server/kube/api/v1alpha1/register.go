package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of these types.
var GroupVersion = schema.GroupVersion{Group: "kedge.guildhouse.dev", Version: "v1alpha1"}

// Resource names, as RBAC rules and REST paths spell them.
const (
	ResourceNodes    = "kedgenodes"
	ResourcePostures = "kedgeclusterpostures"
)

// AddToScheme registers the types with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&KedgeNode{}, &KedgeNodeList{},
		&KedgeClusterPosture{}, &KedgeClusterPostureList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
