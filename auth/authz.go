package auth

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Authorizer enforces a method-to-role table in gRPC interceptors and puts
// the caller's Identity in the context. It logs every decision.
type Authorizer struct {
	table map[string]map[Role]bool
	log   *slog.Logger
}

// NewAuthorizer returns an Authorizer for table, which names for each full
// method name the roles that may call it; a method missing from it is
// denied to everyone.
func NewAuthorizer(log *slog.Logger, table map[string][]Role) *Authorizer {
	a := &Authorizer{table: make(map[string]map[Role]bool, len(table)), log: log}
	for m, roles := range table {
		a.table[m] = make(map[Role]bool, len(roles))
		for _, r := range roles {
			a.table[m][r] = true
		}
	}
	return a
}

// authorize checks the caller of method and returns ctx with its identity.
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	id, err := peerIdentity(ctx)
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "rpc denied", slog.String("method", method), slog.String("outcome", "unauthenticated"), slog.String("error", err.Error()))
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if !a.table[method][id.Role] {
		a.log.LogAttrs(ctx, slog.LevelWarn, "rpc denied", slog.String("user", id.User), slog.String("role", string(id.Role)), slog.String("method", method), slog.String("outcome", "permission_denied"))
		return nil, status.Errorf(codes.PermissionDenied, "role %s may not call %s", id.Role, method)
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "rpc allowed", slog.String("user", id.User), slog.String("role", string(id.Role)), slog.String("method", method), slog.String("outcome", "allowed"))
	return WithIdentity(ctx, id), nil
}

// peerIdentity reads the identity from the connection's verified chain.
func peerIdentity(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, errNoPeer
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return Identity{}, errNoPeer
	}
	return IdentityFromCertificate(info.State.VerifiedChains[0][0])
}

var errNoPeer = errors.New("no verified client certificate")

// UnaryInterceptor authorizes unary RPCs.
func (a *Authorizer) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// StreamInterceptor authorizes streaming RPCs.
func (a *Authorizer) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// JobVisible is the ownership rule: admin and reader see every job, a user
// only its own.
func JobVisible(id Identity, owner string) bool {
	return id.Role == RoleAdmin || id.Role == RoleReader || id.User == owner
}

// AuthorizeJob applies the ownership rule for the caller in ctx to a job of
// owner, and logs the decision with the job. Another user's job answers
// NotFound, so that its existence does not leak.
func (a *Authorizer) AuthorizeJob(ctx context.Context, method, jobID, owner string) error {
	id, ok := FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no identity")
	}
	if !JobVisible(id, owner) {
		a.log.LogAttrs(ctx, slog.LevelWarn, "job denied", slog.String("user", id.User), slog.String("role", string(id.Role)), slog.String("method", method), slog.String("job", jobID), slog.String("outcome", "not_found"))
		return status.Errorf(codes.NotFound, "job %s not found", jobID)
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "job allowed", slog.String("user", id.User), slog.String("role", string(id.Role)), slog.String("method", method), slog.String("job", jobID), slog.String("outcome", "allowed"))
	return nil
}
