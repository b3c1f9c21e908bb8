// The app's tRPC v11 client (httpBatchLink, superjson) pointed at the
// edge; runs one step and prints its outcome as one JSON line.
//   node client.mjs EDGE_URL STEP [TOKEN]
import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';

const [edge, step, token] = process.argv.slice(2);

const client = createTRPCClient({
  links: [httpBatchLink({
    url: `${edge}/api/trpc`,
    transformer: superjson,
    headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
  })],
});

function outcome(p) {
  return p.then(
    (data) => ({ ok: true, data }),
    (e) => ({
      ok: false,
      isTRPCClientError: e instanceof TRPCClientError,
      message: e.message,
      code: e.data?.code,
      httpStatus: e.data?.httpStatus,
      path: e.data?.path,
      retryAfter: e.data?.retryAfter,
      edgeCode: e.data?.edgeCode,
      correlationId: e.data?.correlationId,
    }));
}

const steps = {
  'login-good': () => outcome(client.auth.login.mutate({ email: 'ana@example.com', password: 'good' })),
  'login-bad': () => outcome(client.auth.login.mutate({ email: 'bob@example.com', password: 'bad' })),
  'me': () => outcome(client.user.me.query()),
  // two mutations in one batched request (tRPC batches one type)
  'batch': async () => Promise.all([
    outcome(client.auth.login.mutate({ email: 'bob@example.com', password: 'good' })),
    outcome(client.chat.send.mutate({ text: 'hola' })),
  ]),
  'chat': () => outcome(client.chat.send.mutate({ text: 'hola' })),
};

const result = await steps[step]();
if (!Array.isArray(result) && result.ok && result.data && result.data.issuedAt) {
  // superjson brought the Date back as a Date
  result.issuedAtIsDate = result.data.issuedAt instanceof Date;
}
process.stdout.write(JSON.stringify(result) + '\n');
