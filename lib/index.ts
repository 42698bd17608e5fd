/** zrpc: typed RPC and messaging over ZeroMQ. This file is the public surface and nothing else. */
export { RpcError, STATUS_CODES, RETRYABLE_CODES, isStatusCode, type StatusCode } from './errors.js'
export { EndpointError } from './transport/endpoint.js'
export { curveKeyPair, type CurveKeyPair, type CurveOptions } from './transport/curve.js'
export type { ZapStats } from './transport/zap.js'
export {
  defineService,
  type CallInfo,
  type CallOptions,
  type ClientStream,
  type ItemOf,
  type MethodDefinition,
  type StreamMethodDefinition,
  type StreamOptions,
  type UnaryMethodDefinition,
  type MethodMap,
  type ServiceClient,
  type ServiceDefinition,
  type ServiceHandlers,
  type ParamsOf,
  type ResultOf,
} from './service/contract.js'
export { RpcServer, type ConnectBrokerOptions, type RpcServerOptions, type RpcServerStats } from './service/server.js'
export { RpcClient, type RpcClientOptions, type RpcClientSettings, type RpcClientTarget } from './service/client.js'
export { leastOutstanding, powerOfTwoChoices, roundRobin, type BalancerName, type EndpointLoad, type LoadBalancer } from './rpc/balancer.js'
export { Broker, type BrokerOptions, type BrokerStats, type BrokerWorkerEvent } from './broker/broker.js'
export { BrokerAdmin } from './broker/admin.js'
export { BrokerQueue, type TicketView } from './service/queue-contract.js'
export type { QueueClient, QueueMethod, SubmitOptions, TicketStatus } from './service/client-queue.js'
export type { CallContext } from './rpc/dispatcher.js'
export type { Metadata } from './codec/envelope.js'
export type { ValidationIssue } from './service/validator.js'
export { defineTopic, type TopicDefinition, type DataOf } from './pubsub/topic.js'
export { Publisher, type PublisherOptions, type PublishOptions, type PublisherStats } from './pubsub/publisher.js'
export {
  Subscriber,
  type SubscriberOptions,
  type SubscribeOptions,
  type SubscriberStats,
  type TopicMessage,
  type TopicSubscription,
  type Gap,
  type Epoch,
} from './pubsub/subscriber.js'
export { TopicProxy, type TopicProxyOptions, type TopicProxyStats } from './pubsub/proxy.js'
export { waitForFlow } from './pubsub/flow.js'
