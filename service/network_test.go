package service

import (
	"testing"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestNetworkRule: a job's network follows the rule of limits: unset takes
// the default, a user may restrict it, only an admin may lift it.
func TestNetworkRule(t *testing.T) {
	user, admin := auth.Identity{User: "u", Role: auth.RoleUser}, auth.Identity{User: "a", Role: auth.RoleAdmin}
	const (
		unset = jobworkerv1.Network_NETWORK_UNSPECIFIED
		host  = jobworkerv1.Network_NETWORK_HOST
		none  = jobworkerv1.Network_NETWORK_NONE
	)
	tests := []struct {
		def  job.Network
		who  auth.Identity
		ask  jobworkerv1.Network
		want job.Network
		code codes.Code
	}{
		{"", user, unset, job.NetworkHost, codes.OK},
		{job.NetworkHost, user, unset, job.NetworkHost, codes.OK},
		{job.NetworkHost, user, none, job.NetworkNone, codes.OK},
		{job.NetworkHost, user, host, job.NetworkHost, codes.OK},
		{job.NetworkNone, user, unset, job.NetworkNone, codes.OK},
		{job.NetworkNone, user, none, job.NetworkNone, codes.OK},
		{job.NetworkNone, user, host, "", codes.PermissionDenied},
		{job.NetworkNone, admin, host, job.NetworkHost, codes.OK},
		{job.NetworkHost, user, jobworkerv1.Network(7), "", codes.InvalidArgument},
	}
	for _, tt := range tests {
		s := &api{defaults: defaults{network: tt.def}}
		got, err := s.network(tt.who, tt.ask)
		if got != tt.want || status.Code(err) != tt.code {
			t.Errorf("default %q, %s asks %v: %q, %v; want %q, %v", tt.def, tt.who.Role, tt.ask, got, err, tt.want, tt.code)
		}
	}
}
