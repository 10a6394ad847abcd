package service

import (
	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// MethodRoles is jobworker's one method-to-role table: which roles may call
// each RPC. A method missing from it is denied to everyone. Which jobs a
// role may touch is auth.JobVisible's rule.
func MethodRoles() map[string][]auth.Role {
	all := []auth.Role{auth.RoleAdmin, auth.RoleUser, auth.RoleReader}
	return map[string][]auth.Role{
		jobworkerv1.JobWorkerService_StartJob_FullMethodName:             {auth.RoleAdmin, auth.RoleUser},
		jobworkerv1.JobWorkerService_StopJob_FullMethodName:              {auth.RoleAdmin, auth.RoleUser},
		jobworkerv1.JobWorkerService_GetJobStatus_FullMethodName:         all,
		jobworkerv1.JobWorkerService_GetJobOutput_FullMethodName:         all,
		jobworkerv1.JobWorkerService_ListJobs_FullMethodName:             all,
		jobworkerv1.JobWorkerService_GetServerStatus_FullMethodName:      {auth.RoleAdmin, auth.RoleReader},
		jobworkerv1.JobWorkerService_SignalJob_FullMethodName:            {auth.RoleAdmin, auth.RoleUser},
		jobworkerv1.JobWorkerService_PauseJob_FullMethodName:             {auth.RoleAdmin, auth.RoleUser},
		jobworkerv1.JobWorkerService_ResumeJob_FullMethodName:            {auth.RoleAdmin, auth.RoleUser},
		jobworkerv1.JobWorkerService_UpdateJob_FullMethodName:            {auth.RoleAdmin, auth.RoleUser},
		jobworkerv1.JobWorkerService_WatchJobs_FullMethodName:            all,
		"/grpc.health.v1.Health/Check":                                   all,
		"/grpc.health.v1.Health/Watch":                                   all,
		"/grpc.health.v1.Health/List":                                    all,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      all,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": all,
	}
}
