// A tRPC v11 app with the superjson transformer, as the Linguamate app
// serves its procedures: the upstream of the edge in t/057-trpc-client.t.
//   node server.mjs PORT
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';

const t = initTRPC.context().create({ transformer: superjson });
const any = (v) => v;

const appRouter = t.router({
  auth: t.router({
    login: t.procedure.input(any).mutation(({ input }) => {
      if (input && input.password === 'good') {
        return { token: 'app-token', issuedAt: new Date(0) };
      }
      throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Invalid credentials' });
    }),
  }),
  user: t.router({
    me: t.procedure.query(({ ctx }) => ({
      userId: ctx.userId, sessionId: ctx.sessionId, correlationId: ctx.corr,
    })),
  }),
  chat: t.router({
    send: t.procedure.input(any).mutation(({ input }) => ({ echo: input })),
  }),
});

const server = createHTTPServer({
  router: appRouter,
  basePath: '/api/trpc/',
  createContext: ({ req }) => ({
    userId: req.headers['x-user-id'] ?? null,
    sessionId: req.headers['x-session-id'] ?? null,
    corr: req.headers['x-correlation-id'] ?? null,
  }),
});

server.listen(Number(process.argv[2]), '127.0.0.1');
